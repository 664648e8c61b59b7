"""Reports: the frontier plot and a short savings table (``gearshift report``)."""

from __future__ import annotations

from pathlib import Path

from ..model import Frontier, Schedule
from .plot import Marker, frontier_plot
from .summary import RunPoint, RunSummary
from .table import format_table, savings_rows


def markers_for(frontier: Frontier, schedule: Schedule | None = None,
                run: RunSummary | None = None) -> list[Marker]:
    """The points worth marking: the all-max baseline (what the GPU does by default: top clock,
    the framework's overlap), gearshift's default pick (iso-time) when another objective was
    chosen, and the chosen schedule, as planned and as run."""
    out = []
    if frontier.baseline is not None:
        out.append(Marker("all-max baseline = default clocks (top clock, framework overlap)",
                          frontier.baseline.time_s, frontier.baseline.energy_j, "s", "C3"))
        if schedule is not None and schedule.objective != "iso-time":
            from ..search.select import select  # noqa: PLC0415

            d = select(frontier, "iso-time")
            out.append(Marker("default schedule (objective iso-time)", d.time_s, d.energy_j,
                              "D", "C4"))
    if schedule is not None and schedule.predicted.get("time_s"):
        p = schedule.predicted
        note = (_change(p["time_s"], p["energy_j"], p["baseline_time_s"], p["baseline_energy_j"])
                if p.get("baseline_time_s") else "")
        out.append(Marker(f"chosen: {schedule.objective}"
                          + (f"={p['objective_arg']:g}" if p.get("objective_arg") else "")
                          + " (planned)", p["time_s"], p["energy_j"], "*", "C2", note, (10, -12)))
    else:
        sel = frontier.meta.get("selected_index")
        if sel is not None and 0 <= sel < len(frontier.points):
            pt = sorted(frontier.points, key=lambda q: q.time_s)[sel]
            out.append(Marker("chosen point", pt.time_s, pt.energy_j, "*", "C2"))
    if run is not None:
        g, b = run.gearshift, run.baseline
        out.append(Marker(f"chosen, as run ({g.iterations} iterations, switch costs included)",
                          g.time_s, g.energy_j, "X", "C1",
                          _change(g.time_s, g.energy_j, b.time_s, b.energy_j) if b else "",
                          (12, 18)))
    return out


def _change(t: float, e: float, base_t: float, base_e: float) -> str:
    def pct(x):
        v = round(x * 100, 1)
        return f"{v if v != 0 else 0.0:+.1f} %"       # never "-0.0 %"

    return f"{pct(e / base_e - 1)} energy, {pct(t / base_t - 1)} time"


def check_same_model(frontier: Frontier, schedule: Schedule) -> None:
    """Refuse to draw a schedule beside another model's (or device's) frontier, naming both."""
    from ..errors import ScheduleMismatchError  # noqa: PLC0415

    problems = []
    sig, dev = frontier.meta.get("model_signature"), frontier.meta.get("device")
    if sig and sig != schedule.model_signature:
        problems.append(f"model signature: frontier {sig}, schedule {schedule.model_signature}")
    if dev and dev != schedule.device:
        problems.append(f"device: frontier '{dev}', schedule '{schedule.device}'")
    # files from before the frontier recorded its model: at least the partitions must agree
    units = [c.unit for c in frontier.points[0].choices] if frontier.points else []
    if units and all(u.startswith("p") for u in units) and len(units) != len(schedule.entries):
        problems.append(f"partitions: frontier {len(units)}, schedule {len(schedule.entries)}")
    if problems:
        raise ScheduleMismatchError(
            "the frontier and the schedule were planned for different models or devices ("
            + "; ".join(problems) + ")",
            "pass the frontier written by the same `gearshift plan` run as the schedule")


def report(frontier: Frontier, path: str | Path, schedule: Schedule | None = None,
           run: RunSummary | None = None, title: str = "") -> tuple[Path, str]:
    """Write the plot; return (its path, the savings table as text)."""
    if schedule is not None:
        check_same_model(frontier, schedule)
    png = frontier_plot(frontier, path, markers_for(frontier, schedule, run), title)
    tag = f"{frontier.source}, {frontier.energy_scope} energy"
    tables = []
    if run is not None and run.baseline is not None:
        tables.append(format_table(savings_rows(run.baseline.time_s, run.baseline.energy_j,
                                                run.gearshift.time_s, run.gearshift.energy_j),
                                   f"as run on {run.device} ({run.source}, "
                                   f"{run.energy_scope} energy, mean of "
                                   f"{run.gearshift.iterations} iterations):"))
    if schedule is not None and schedule.predicted.get("baseline_time_s"):
        p = schedule.predicted
        tables.append(format_table(savings_rows(p["baseline_time_s"], p["baseline_energy_j"],
                                                p["time_s"], p["energy_j"]),
                                   f"planned ({tag}):"))
    return png, "\n\n".join(tables)


__all__ = ["Marker", "RunPoint", "RunSummary", "check_same_model", "format_table",
           "frontier_plot", "markers_for",
           "report", "savings_rows"]
