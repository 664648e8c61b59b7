"""Why a plan saves what it saves: the frontier's saving at a few time allowances, in words."""

from __future__ import annotations

SLACKS = (0.0, 0.02, 0.05)


def saving_at(frontier, slack: float, reference: str = "baseline") -> float | None:
    """Energy saving (fraction of the all-max baseline) of the frontier's least-energy point
    within (1 + slack) x the time of the baseline (or of the ``fastest`` point, as
    ``max-slowdown`` counts); None without a baseline."""
    base = frontier.baseline
    if base is None or base.energy_j <= 0 or not frontier.points:
        return None
    t_ref = base.time_s if reference == "baseline" else min(p.time_s for p in frontier.points)
    ok = [p.energy_j for p in frontier.points if p.time_s <= t_ref * (1 + slack) * (1 + 1e-9)]
    return 1.0 - min(ok) / base.energy_j if ok else 0.0


def frontier_summary(frontier) -> str:
    """'frontier: -3.1 % energy at +0 % time, -9.8 % at +2 %, -15.7 % at +5 % (simulated, gpu)'."""
    parts = []
    for s in SLACKS:
        v = saving_at(frontier, s)
        if v is None:
            return "frontier: no all-max baseline to compare with"
        parts.append(f"{-100 * v:+.1f} % energy at +{100 * s:.0f} % time")
    return f"frontier: {', '.join(parts)} ({frontier.source}, {frontier.energy_scope} energy)"


def explain_plan(plan, objective: str, switch_latency_s: float | None = None) -> str:
    """One or two sentences: what the selected point saves and, when that is ~0, why and what a
    small slowdown would buy (numbers computed from this plan's frontier)."""
    p = plan.schedule.predicted
    saving, slowdown = p.get("energy_saving") or 0.0, p.get("slowdown") or 1.0
    src = f"{p.get('source', 'simulated')}, {p.get('energy_scope', 'gpu')} energy"
    n = len(plan.partitioning)
    base = plan.frontier.baseline
    top = max(c.freq_mhz for c in base.choices) if base is not None and base.choices else \
        max(e.freq_mhz for e in plan.schedule.entries)
    lowered = sum(1 for e in plan.schedule.entries if e.freq_mhz < top)
    overlapped = sum(1 for e in plan.schedule.entries
                     if str(e.overlap).split("/")[0] not in ("none", "serial"))
    if saving > 0.005:
        return (f"{objective}: {100 * saving:.1f} % less energy at {100 * (slowdown - 1):+.1f} % "
                f"time ({src}); {lowered} of {n} partitions run below {top} MHz"
                + (f", {overlapped} overlap a collective with other work" if overlapped else ""))
    better = [(s, v) for s in SLACKS[1:] if (v := saving_at(plan.frontier, s, "fastest")) is not None]
    offer = "; ".join(f"max-slowdown={1 + s:.2f} would save {100 * v:.1f} %" for s, v in better
                      if v > 0.005)
    if n == 1:
        why = ("the step is one partition (it is shorter than a few clock switches"
               + (f" of {1e3 * switch_latency_s:.1f} ms" if switch_latency_s else "")
               + ", or has no boundary to switch at), so it runs at one clock and the top "
               "clock is the fastest")
    else:
        why = (f"no partition has slack at {objective} on this model: each of the {n} "
               "partitions is lengthened by any lower clock, which the objective does not allow")
    return (f"{objective}: {100 * saving:.1f} % saving ({src}) because {why}"
            + (f"; {offer}" if offer else "; a 5 % slowdown would not save energy either"))
