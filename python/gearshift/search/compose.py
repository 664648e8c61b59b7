"""Compose partition frontiers that run in sequence into one frontier (sum of times and energies).

The inputs' energies must be total (static included, see partition_frontier): the composite's
static energy is then the static power times the summed time, charged exactly once.

Method and error bound
----------------------
Two exact-where-they-apply searches are merged and Pareto-pruned on the true sums:

1. **Quantised dynamic programme.** Each option's time above its partition's fastest option
   is rounded to a whole number of quanta ``q`` (``time_quantum_s``); a min-plus convolution
   over the integer totals keeps, for every total, the least energy, and drops every state a
   quicker-or-equal and cheaper state dominates. It is exact for the rounded problem. Every
   returned point is a real combination whose time and energy are recomputed exactly; the only
   loss is a bounded time shift: for every point (T*, E*) of the exact frontier the result holds
   a point with energy <= E* and time <= T* + B_dp, where
   ``B_dp = sum_i (max_k r_ik - min_k r_ik) <= m * q``, r_ik the rounding residual of option k
   of partition i and m the number of partitions with more than one frontier point. Times that
   are whole multiples of ``q`` make the result exactly the true frontier.
2. **Convex hull walk (Lagrangian).** The lower convex hull of a sum is the sum of the hulls;
   walking all partitions' hull edges by slope gives every supported frontier point exactly. A
   non-supported exact point lies between two consecutive hull points that differ in one
   partition's step, so the later one is within ``G = max hull-edge time of any partition`` of
   it at no more energy. G does not grow with the number of partitions.

The stated bound is ``error_bound_s = min(B_dp, G)`` (``ComposedFrontier.error_bound_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .partition_frontier import pareto_indices

DEFAULT_UNITS = 4096            # default quantum: the frontier's time span over this many steps
MAX_CELLS = 60_000_000          # DP table cells (partitions x time steps) before we refuse


@dataclass
class ComposedFrontier:
    """Pareto frontier of a sequence, fastest first.

    ``choice_by_unit[i, p]`` is the index, into input ``i``'s points, of the option that point
    ``p`` runs (one row per input, so a row is contiguous: cheap to gather per partition).
    """

    time_s: np.ndarray
    energy_j: np.ndarray
    choice_by_unit: np.ndarray
    time_quantum_s: float
    error_bound_s: float
    dp_bound_s: float = 0.0
    hull_bound_s: float = 0.0

    def __len__(self) -> int:
        return int(self.time_s.size)

    def choices(self, point: int) -> np.ndarray:
        """Option index per input at one point."""
        return self.choice_by_unit[:, point]


def _as_pareto(fr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, energy, original index) of one input, Pareto-pruned and fastest first."""
    if isinstance(fr, tuple):
        t, e = fr
    else:
        t, e = fr.time_s, fr.energy_j
    t = np.asarray(t, dtype=float)
    e = np.asarray(e, dtype=float)
    if t.size == 0 or t.shape != e.shape or t.ndim != 1:
        raise ConfigError("a frontier to compose is empty or has mismatched time/energy arrays",
                          "give every partition at least one (time_s, energy_j) point")
    if not (np.isfinite(t).all() and np.isfinite(e).all()):
        raise ConfigError("a frontier to compose holds a non-finite time or energy",
                          "check the profile for NaN or infinite values")
    idx = pareto_indices(t, e)
    return t[idx], e[idx], idx


def _hull(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Vertex indices of the lower convex hull of a Pareto staircase (fastest to cheapest)."""
    hull: list[int] = []
    for k in range(t.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or above the segment a -> k
            if (e[b] - e[a]) * (t[k] - t[a]) >= (e[k] - e[a]) * (t[b] - t[a]):
                hull.pop()
            else:
                break
        hull.append(k)
    return np.asarray(hull, dtype=np.int64)


class _HullWalk:
    """Every supported point of the sum: all inputs' hull edges taken steepest first."""

    def __init__(self, parts):
        self.n = len(parts)
        slopes, owner, vertex, dts, des = [], [], [], [], []
        self.gap = 0.0
        for i, (t, e, _) in enumerate(parts):
            h = _hull(t, e)
            if h.size > 1:
                dt, de = np.diff(t[h]), np.diff(e[h])
                slopes.append(de / dt)
                owner.append(np.full(h.size - 1, i))
                vertex.append(h[1:])
                dts.append(dt)
                des.append(de)
                self.gap = max(self.gap, float(dt.max()))
        t0 = float(sum(t[0] for t, _, _ in parts))
        e0 = float(sum(e[0] for _, e, _ in parts))
        if not slopes:
            self.owner = self.vertex = np.zeros(0, dtype=np.int64)
            self.time_s, self.energy_j = np.array([t0]), np.array([e0])
            return
        slopes, owner, vertex, dts, des = (np.concatenate(x)
                                           for x in (slopes, owner, vertex, dts, des))
        # ties in slope: keep each input's own edges in order (vertex breaks the tie)
        order = np.lexsort((vertex, owner, slopes))
        self.owner, self.vertex = owner[order], vertex[order]
        self.time_s = t0 + np.concatenate(([0.0], np.cumsum(dts[order])))
        self.energy_j = e0 + np.concatenate(([0.0], np.cumsum(des[order])))

    def choices(self, points: np.ndarray) -> np.ndarray:
        """(inputs, len(points)) option indices at the given hull points."""
        out = np.zeros((self.n, points.size), dtype=np.int32)
        steps = np.arange(1, self.owner.size + 1)
        for i in np.unique(self.owner):
            mine = self.owner == i
            taken = np.searchsorted(steps[mine], points, side="right")
            out[i] = np.concatenate(([0], self.vertex[mine]))[taken]
        return out


def _dp(parts, q: float, cap_units: int | None):
    """The quantised programme: (time, energy, choice_by_unit) of its frontier, and B_dp."""
    n = len(parts)
    units, bound = [], 0.0
    for t, _, _ in parts:
        rel = t - t[0]
        u = np.rint(rel / q).astype(np.int64)
        r = rel - q * u
        bound += float(r.max() - r.min())
        units.append(u)
    widest = sum(int(u[-1]) for u in units) + 1
    if cap_units is not None:
        widest = min(widest, cap_units + 1)
    if widest * n > MAX_CELLS:
        raise ConfigError(f"time quantum {q:.3g} s is too fine for {n} partitions "
                          f"({widest * n:.3g} table cells)",
                          "use a coarser time_quantum_s, or cap the time span (max_time_s)")
    state = np.zeros(1)                       # least energy at each quantised total, inf = none
    picks: list[np.ndarray] = []
    for (t, e_all, _), u_all in zip(parts, units):
        # of the options sharing a quantum only the last (cheapest) can be on the rounded frontier
        rep = np.flatnonzero(np.append(u_all[1:] != u_all[:-1], True))
        u, e = u_all[rep], e_all[rep]
        width = state.size + int(u[-1])
        if cap_units is not None:
            width = min(width, cap_units + 1)
        table = np.full((u.size, width), np.inf)
        for k in range(u.size):
            lo = int(u[k])
            if lo >= width:
                break
            hi = min(width, lo + state.size)
            np.add(state[:hi - lo], e[k], out=table[k, lo:hi])
        pick = np.argmin(table, axis=0)
        new = table[pick, np.arange(width)]
        # drop states that a quicker state beats or ties on energy: they can never win later
        best_before = np.minimum.accumulate(np.concatenate(([np.inf], new[:-1])))
        new[new >= best_before] = np.inf
        state = new
        picks.append(rep[pick].astype(np.int32))
    ends = np.flatnonzero(np.isfinite(state))
    by_unit = np.zeros((n, ends.size), dtype=np.int32)
    t_sum = np.zeros(ends.size)
    e_sum = np.zeros(ends.size)
    j = ends
    for i in range(n - 1, -1, -1):
        k = picks[i][j]
        by_unit[i] = k
        t, e, _ = parts[i]
        t_sum += t[k]
        e_sum += e[k]
        j = j - units[i][k]
    return t_sum, e_sum, by_unit, bound


def compose(frontiers: Sequence, time_quantum_s: float | None = None, *,
            max_time_s: float | None = None, hull: bool = True) -> ComposedFrontier:
    """Frontier of running ``frontiers`` one after another (times add, energies add).

    ``frontiers``: objects with ``time_s`` and ``energy_j`` arrays (a PartitionFrontier) or
    ``(time_s, energy_j)`` tuples; energies total. ``time_quantum_s``: the grid of the quantised
    programme (default: the summed time span / 4096). ``max_time_s``: points slower than this
    are not needed (the programme's table stops there; exact points up to it stay covered).
    See the module docstring for the error bound, returned as ``error_bound_s``.
    """
    parts = [_as_pareto(f) for f in frontiers]
    if not parts:
        raise ConfigError("nothing to compose", "pass at least one partition frontier")
    t_fast = float(sum(t[0] for t, _, _ in parts))
    span = float(sum(t[-1] - t[0] for t, _, _ in parts))
    if max_time_s is not None:
        span = min(span, max(max_time_s - t_fast, 0.0))
    if time_quantum_s is None:
        q = span / DEFAULT_UNITS if span > 0 else 1.0
    elif time_quantum_s > 0:
        q = float(time_quantum_s)
    else:
        raise ConfigError(f"time_quantum_s={time_quantum_s} must be > 0",
                          "pass a positive quantum, or None for the default")
    cap = None
    if max_time_s is not None:
        lowest_residual = sum(float(np.min((t - t[0]) - q * np.rint((t - t[0]) / q)))
                              for t, _, _ in parts)
        cap = max(int(np.floor((max_time_s - t_fast - lowest_residual) / q + 1e-9)), 0)
    t_dp, e_dp, dp_choice, dp_bound = _dp(parts, q, cap)
    hull_bound = np.inf
    if hull:
        walk = _HullWalk(parts)
        hull_bound = walk.gap
        t_all = np.concatenate([t_dp, walk.time_s])
        e_all = np.concatenate([e_dp, walk.energy_j])
    else:
        t_all, e_all = t_dp, e_dp
    keep = pareto_indices(t_all, e_all)
    is_dp = keep < t_dp.size
    blocks = [dp_choice[:, keep[is_dp]]]
    if not is_dp.all():
        blocks.append(walk.choices(keep[~is_dp] - t_dp.size))
    # columns come as [dp survivors, hull survivors]; put them back in time order
    column = np.empty(keep.size, dtype=np.int64)
    column[is_dp] = np.arange(int(is_dp.sum()))
    column[~is_dp] = int(is_dp.sum()) + np.arange(int((~is_dp).sum()))
    choice = np.concatenate(blocks, axis=1)[:, column]
    for i, (_, _, idx) in enumerate(parts):
        if not np.array_equal(idx, np.arange(idx.size)):  # input carried dominated points
            choice[i] = idx[choice[i]]
    return ComposedFrontier(t_all[keep], e_all[keep], choice, q, float(min(dp_bound, hull_bound)),
                            dp_bound, float(hull_bound))
