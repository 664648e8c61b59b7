"""Multi-pass refinement of a pipeline frontier.

A pass halves the time quantum where it matters: between every two neighbouring solved
iteration times inside the window of interest (the part of the frontier around the selected
point, or all of it) whose best real plan is still more than ``gap_tol`` above the relaxation's
bound, it solves the relaxation at the midpoint and rounds it (pipeline.plan_at), then
interpolates around the new time. Passes stop when one improves no frontier point by more than
``tol`` (relative energy at equal or lower time), or after ``max_passes``.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .passes import PassReport
from .pipeline import PipelineSearch, interpolate, plan_at


# crash repair in the refinement passes up to this many computations (GPT-3 N=96 on 8 stages
# has 1536 and keeps it); above, its O(computations) steps take minutes (16 x 128 x 2 x 2)
REFINE_CRASH_MAX_OPS = 2048


def staircase(search: PipelineSearch, times: np.ndarray) -> np.ndarray:
    """Best real energy at time <= t, for each t (inf where nothing is that fast)."""
    par = search.pareto()
    ts = np.array([c.time_s for c in par])
    es = np.array([c.energy_j for c in par])
    pos = np.searchsorted(ts, np.asarray(times) * (1 + 1e-12), side="right") - 1
    return np.where(pos >= 0, es[np.maximum(pos, 0)], np.inf)


def refine(search: PipelineSearch, window: tuple[float, float] | None = None,
           tol: float = 1e-3, gap_tol: float = 2e-3, max_passes: int = 6, between: int = 2,
           target_s: float | None = None,
           progress: Callable[[PassReport], None] | None = None) -> list[PassReport]:
    lo, hi = window if window is not None else (search.t_min_s, search.t_max_s)
    reports = []
    for k in range(1, max_passes + 1):
        started = time.perf_counter()
        solved = sorted(search.relaxed)
        inside = [t for t in solved if lo - 1e-9 <= t <= hi + 1e-9]
        # neighbours of the window too, so its ends get refined
        idx = [solved.index(t) for t in inside]
        if idx:
            solved = solved[max(min(idx) - 1, 0):max(idx) + 2]
        probe = np.array([c.time_s for c in search.pareto()])
        before = staircase(search, probe)
        new = []
        for t_a, t_b in zip(solved[:-1], solved[1:]):
            worst = max(_gap(search, t_a), _gap(search, t_b))
            if worst > gap_tol:
                new.append(0.5 * (t_a + t_b))
        thorough = search.problem.num_ops <= REFINE_CRASH_MAX_OPS
        for t in new:
            plan_at(search, t, thorough)
        for t in new:
            ordered = sorted(search.relaxed)
            j = ordered.index(t)
            for nb in (ordered[j - 1] if j > 0 else None, ordered[j + 1] if j + 1 < len(ordered)
                       else None):
                if nb is not None:
                    interpolate(search, min(t, nb), max(t, nb), between)
        after = staircase(search, probe)
        ok = np.isfinite(before) & (before > 0)
        gain = float(np.max((before[ok] - after[ok]) / before[ok])) if ok.any() else 0.0
        times = sorted(search.relaxed)
        quantum = float(np.min(np.diff(times))) if len(times) > 1 else 0.0
        best = search.best_within(target_s) if target_s is not None else None
        rep = PassReport(len(search.passes) + 1, quantum, len(new), max(gain, 0.0),
                         best.time_s if best is not None else float("nan"),
                         best.energy_j if best is not None else float("nan"),
                         time.perf_counter() - started)
        reports.append(rep)
        search.passes.append(rep)
        if progress is not None:
            progress(rep)
        if not new or gain <= tol:
            break
    return reports


def _gap(search: PipelineSearch, t: float) -> float:
    lb = search.bounds.get(t)
    best = search.best_within(t)
    if lb is None or best is None or lb <= 0:
        return 0.0
    return (best.energy_j - lb) / lb
