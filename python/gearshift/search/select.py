"""Pick one point of a Frontier by an objective.

``iso-time``         min energy at the all-max-clock time (the frontier's baseline; without a
                     baseline, at the fastest time)
``fastest``          min energy at the frontier's fastest time
``iso-energy``       min time at the all-max-clock run's energy
``max-slowdown=X``   min energy with time <= X * the fastest time (X >= 1)
``cost=ETA``         min Zeus-style cost ETA*energy + (1-ETA)*P_ref*time, ETA in [0, 1];
                     P_ref is the all-max run's average power (energy/time), so ETA=0.5 weighs
                     a second like the energy the all-max run spends in it
A selection no point satisfies raises InfeasibleSelectionError naming the nearest point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError, InfeasibleSelectionError
from ..model.frontier import Frontier, FrontierPoint

KINDS = ("iso-time", "fastest", "iso-energy", "max-slowdown", "cost")
_REL = 1e-9   # times/energies equal up to float noise count as equal


@dataclass(frozen=True)
class Selection:
    kind: str
    value: float | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"


def parse_selection(text: str | Selection) -> Selection:
    if isinstance(text, Selection):
        return text
    raw = str(text).strip().lower()
    kind, _, arg = raw.partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        raise ConfigError(f"unknown selection '{text}'",
                          "use iso-time, fastest, iso-energy, max-slowdown=X (e.g. 1.05) or "
                          "cost=ETA (0..1)")
    needs = kind in ("max-slowdown", "cost")
    if needs and not arg:
        raise ConfigError(f"selection '{kind}' needs a value",
                          f"write {kind}=1.05" if kind == "max-slowdown" else f"write {kind}=0.5")
    if not needs and arg:
        raise ConfigError(f"selection '{kind}' takes no value (got '{arg}')", f"write {kind}")
    if not needs:
        return Selection(kind)
    try:
        v = float(arg)
    except ValueError:
        raise ConfigError(f"'{arg}' in '{text}' is not a number", f"write {kind}=<number>") from None
    if kind == "max-slowdown" and not (math.isfinite(v) and v >= 1.0):
        raise ConfigError(f"max-slowdown {arg} is below 1 (it is a factor on the fastest time)",
                          "write max-slowdown=1.05 for at most 5% slower than the fastest point")
    if kind == "cost" and not (0.0 <= v <= 1.0):
        raise ConfigError(f"cost eta {arg} is outside [0, 1]",
                          "write cost=0 (time only) .. cost=1 (energy only)")
    return Selection(kind, v)


def select(frontier: Frontier, selection: str | Selection) -> FrontierPoint:
    sel = parse_selection(selection)
    pts = sorted(frontier.points, key=lambda p: (p.time_s, p.energy_j))
    if not pts:
        raise InfeasibleSelectionError("the frontier has no points", "run the search first")
    fastest = pts[0]
    base = frontier.baseline

    if sel.kind == "cost":
        p_ref = (base.energy_j / base.time_s) if base is not None else \
            (fastest.energy_j / fastest.time_s)
        eta = sel.value
        return min(pts, key=lambda p: eta * p.energy_j + (1 - eta) * p_ref * p.time_s)

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


def target_time(frontier: Frontier, selection: str | Selection) -> float | None:
    """The iteration time a selection aims at (the part of the frontier to refine), if any."""
    sel = parse_selection(selection)
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
    return None
