"""Is a pipeline frontier at least as good as a reference one? (issue #16 item 4's speed work)

Faster sweeps may land on other, equally good plans, so two frontiers are compared by their
exactly re-scored points, not by plan identity. The new frontier is as good as the reference
when every reference point (t, e) is matched: some new point is no slower (t * (1 + time_rtol))
and no costlier (e * (1 + energy_rtol)), or the lower convex hull of the new points at t is no
costlier (mixing two plans over iterations reaches any point of that hull). Coverage counts
too: the new frontier must reach the reference's fastest time and span its time range, with a
comparable number of points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TIME_RTOL = 1e-9
ENERGY_RTOL = 1e-6
MIN_POINT_RATIO = 0.5       # new points / reference points
SPAN_RTOL = 0.01            # the new time span may fall short of the reference's by 1 %


@dataclass
class Comparison:
    reference_points: int
    points: int
    misses: list = field(default_factory=list)   # (t, e_ref, e_new_best) not matched
    worst_excess: float = 0.0                     # max over reference points of e_new/e_ref - 1
    span_ratio: float = 1.0                       # new time span / reference time span
    reaches_fastest: bool = True

    @property
    def ok(self) -> bool:
        return (not self.misses and self.reaches_fastest and self.span_ratio >= 1 - SPAN_RTOL
                and self.points >= MIN_POINT_RATIO * self.reference_points)

    def summary(self) -> str:
        return (f"points={self.points}/{self.reference_points} misses={len(self.misses)} "
                f"worst_excess={self.worst_excess:.3g} span_ratio={self.span_ratio:.4f} "
                f"reaches_fastest={self.reaches_fastest} ok={self.ok}")


def lower_hull_at(times: np.ndarray, energies: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The lower convex hull of (times, energies) evaluated at ``at`` (inf outside its range)."""
    order = np.lexsort((energies, times))
    t, e = np.asarray(times, float)[order], np.asarray(energies, float)[order]
    h: list[int] = []
    for i in range(len(t)):
        while len(h) >= 2:
            a, b = h[-2], h[-1]
            if (e[b] - e[a]) * (t[i] - t[a]) >= (e[i] - e[a]) * (t[b] - t[a]):
                h.pop()
            else:
                break
        if h and t[i] == t[h[-1]]:
            continue                    # same time, higher energy (sorted): not on the hull
        h.append(i)
    th, eh = t[h], e[h]
    at = np.asarray(at, float)
    out = np.interp(at, th, eh)
    return np.where((at >= th[0] * (1 - TIME_RTOL)) & (at <= th[-1] * (1 + TIME_RTOL)), out,
                    np.inf)


def compare(points, reference, time_rtol: float = TIME_RTOL,
            energy_rtol: float = ENERGY_RTOL) -> Comparison:
    """``points`` and ``reference``: sequences of (time_s, energy_j), exactly re-scored."""
    p = np.asarray(points, float).reshape(-1, 2)
    r = np.asarray(reference, float).reshape(-1, 2)
    out = Comparison(len(r), len(p))
    # best new energy no slower than each reference time, and the hull there
    order = np.argsort(p[:, 0], kind="stable")
    pt, pe = p[order, 0], np.minimum.accumulate(p[order, 1])
    pos = np.searchsorted(pt, r[:, 0] * (1 + time_rtol), side="right") - 1
    stair = np.where(pos >= 0, pe[np.maximum(pos, 0)], np.inf)
    best = np.minimum(stair, lower_hull_at(p[:, 0], p[:, 1], r[:, 0]))
    excess = best / r[:, 1] - 1
    out.worst_excess = float(excess.max())
    bad = excess > energy_rtol
    out.misses = [(float(t), float(e), float(b)) for t, e, b in zip(r[bad, 0], r[bad, 1],
                                                                     best[bad])]
    out.reaches_fastest = bool(pt[0] <= r[:, 0].min() * (1 + time_rtol))
    span_r = r[:, 0].max() - r[:, 0].min()
    out.span_ratio = float((pt[-1] - pt[0]) / span_r) if span_r > 0 else 1.0
    return out


def frontier_points(frontier) -> list[tuple[float, float]]:
    return [(p.time_s, p.energy_j) for p in frontier.points]


def write_reference(path: Path, points, about: dict) -> None:
    Path(path).write_text(json.dumps({"about": about, "points": [list(x) for x in points]},
                                     indent=0) + "\n")


def read_reference(path: Path) -> list[tuple[float, float]]:
    return [tuple(x) for x in json.loads(Path(path).read_text())["points"]]
