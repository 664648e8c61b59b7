"""Pick one point of a Frontier by an Objective (``gearshift.objective``: the written forms,
their checks and the Zeus cost live there, parsed once for config, CLI, search and tuning).

For ``cost=ETA`` the reference power P_ref is the all-max run's average power (energy/time),
so ETA=0.5 weighs a second like the energy the all-max run spends in it. A selection no point
satisfies raises InfeasibleSelectionError naming the nearest point.
"""

from __future__ import annotations

from ..errors import ConfigError, InfeasibleSelectionError
from ..model.frontier import Frontier, FrontierPoint
from ..objective import Objective, zeus_cost

_REL = 1e-9   # times/energies equal up to float noise count as equal


def select(frontier: Frontier, selection: str | Objective) -> FrontierPoint:
    sel = Objective.parse(selection)
    pts = sorted(frontier.points, key=lambda p: (p.time_s, p.energy_j))
    if not pts:
        raise InfeasibleSelectionError("the frontier has no points", "run the search first")
    fastest = pts[0]
    base = frontier.baseline

    if sel.kind == "cost":
        p_ref = (base.energy_j / base.time_s) if base is not None else \
            (fastest.energy_j / fastest.time_s)
        eta = sel.value
        return min(pts, key=lambda p: zeus_cost(p.energy_j, p.time_s, eta, p_ref))

    if sel.kind == "iso-energy":
        if base is None:
            raise ConfigError("iso-energy needs the all-max-clock run's energy, and this "
                              "frontier has no baseline", "plan from a profile (the search "
                              "records the baseline) or pick another selection")
        ok = [p for p in pts if p.energy_j <= base.energy_j * (1 + _REL)]
        if not ok:
            near = min(pts, key=lambda p: p.energy_j)
            raise InfeasibleSelectionError(
                f"no frontier point uses at most the all-max energy {base.energy_j:.6g} J; "
                f"nearest: time {near.time_s:.6g} s, energy {near.energy_j:.6g} J",
                "choose iso-time or a max-slowdown", nearest=near)
        return ok[0]

    if sel.kind == "iso-time":
        limit = base.time_s if base is not None else fastest.time_s
        what = "the all-max-clock time"
    elif sel.kind == "fastest":
        limit, what = fastest.time_s, "the fastest time"
    elif sel.kind == "deadline":
        limit, what = sel.value, f"the deadline {sel.value:.6g} s"
    else:
        limit = sel.value * fastest.time_s
        what = f"{sel.value:g} x the fastest time {fastest.time_s:.6g} s"
    ok = [p for p in pts if p.time_s <= limit * (1 + _REL)]
    if not ok:
        raise InfeasibleSelectionError(
            f"no frontier point finishes within {what} ({limit:.6g} s); nearest: time "
            f"{fastest.time_s:.6g} s, energy {fastest.energy_j:.6g} J "
            f"({fastest.time_s / limit - 1:+.2%} time)",
            "allow more time (e.g. --select max-slowdown=1.05) or use the fastest point "
            "(--select fastest)", nearest=fastest)
    return min(ok, key=lambda p: (p.energy_j, p.time_s))


def target_time(frontier: Frontier, selection: str | Objective) -> float | None:
    """The iteration time a selection aims at (the part of the frontier to refine), if any."""
    sel = Objective.parse(selection)
    pts = frontier.points
    if not pts:
        return None
    fastest = min(p.time_s for p in pts)
    if sel.kind == "iso-time":
        return frontier.baseline.time_s if frontier.baseline is not None else fastest
    if sel.kind == "fastest":
        return fastest
    if sel.kind == "max-slowdown":
        return sel.value * fastest
    if sel.kind == "deadline":
        return sel.value
    return None
