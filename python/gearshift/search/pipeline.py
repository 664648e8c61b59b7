"""Pipeline-aware iteration time-energy frontier (any schedule), per-computation clocks.

The sweep: for a grid of iteration times T between the all-fastest plan's time and the time
beyond which slowing down only adds blocking energy, solve the relaxation at T (pipeline_lp),
round it to clocks, fill the freed slack, and re-score the plan exactly with the pipeline
executor. The frontier is the Pareto set of the re-scored plans; the relaxation's optima give a
lower bound at every grid time, so the gap of each point is known (``PipelineSearch.gap``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..model.frontier import Choice, Frontier, FrontierPoint
from ..pipeline import INSTRUCTIONS, PipelinePlan, PipelineResult
from .pipeline_lp import _highspy, crash, fill_slack, relaxation, round_diffuse, round_down, round_hull
from .pipeline_problem import PipelineProblem


@dataclass
class Candidate:
    time_s: float
    energy_j: float
    plan: PipelinePlan
    deadline_s: float | None = None      # the T it was planned for (None: a reference plan)


@dataclass
class PipelineSearch:
    """Everything a sweep found: re-scored plans, the bound, the all-max baseline."""

    problem: PipelineProblem
    baseline: PipelineResult                      # all computations at the highest clock
    candidates: list[Candidate] = field(default_factory=list)
    bounds: dict = field(default_factory=dict)    # deadline_s -> relaxed energy lower bound
    # deadline_s -> the tighter bound of the hull LP over feasible clocks (pipeline_polish),
    # where a point was polished
    tight_bounds: dict = field(default_factory=dict)
    # deadline_s -> the nominal CPU seconds the polish spent there (pipeline_polish.Work)
    polish_work_s: dict = field(default_factory=dict)
    relaxed: dict = field(default_factory=dict)   # deadline_s -> relaxed durations (per op)
    passes: list = field(default_factory=list)    # refinement reports (refine.py)
    t_min_s: float = 0.0
    t_max_s: float = 0.0

    def pareto(self) -> list[Candidate]:
        out, best = [], float("inf")
        for c in sorted(self.candidates, key=lambda c: (c.time_s, c.energy_j)):
            if c.energy_j < best * (1 - 1e-12):
                out.append(c)
                best = c.energy_j
        return out

    def frontier(self) -> Frontier:
        pts = [FrontierPoint(c.time_s, c.energy_j) for c in self.pareto()]
        b = self.baseline
        p = self.problem
        return Frontier(pts, energy_scope="gpu+blocking", source="simulated",
                        baseline=FrontierPoint(b.time_s, b.energy_j),
                        meta={"kind": p.kind, "stages": p.stages, "microbatches": p.microbatches,
                              "virtual_stages": p.virtual_stages,
                              "blocking_power_w": p.blocking_power_w})

    def plan_for(self, point: FrontierPoint) -> PipelinePlan:
        for c in self.pareto():
            if c.time_s == point.time_s and c.energy_j == point.energy_j:
                return c.plan
        raise KeyError("the point is not on this search's frontier")

    def best_within(self, deadline_s: float) -> Candidate | None:
        ok = [c for c in self.candidates if c.time_s <= deadline_s * (1 + 1e-12)]
        return min(ok, key=lambda c: c.energy_j) if ok else None

    def gap(self) -> list[tuple[float, float, float]]:
        """(T, best real energy at time <= T, relaxed lower bound at T) for every planned T."""
        out = []
        for t, lb in sorted(self.bounds.items()):
            best = self.best_within(t)
            if best is not None:
                out.append((t, best.energy_j, lb))
        return out


def choices_of(plan: PipelinePlan) -> list[Choice]:
    """A plan as frontier choices, one per computation: unit ``s{stage}/{instr}/{mb}``."""
    f = plan.freq_mhz
    return [Choice(f"s{s}/{INSTRUCTIONS[k]}/{m}", int(f[s, k, m]))
            for s in range(f.shape[0]) for k in range(f.shape[1]) for m in range(f.shape[2])
            if f[s, k, m] > 0]


def start_search(prob: PipelineProblem) -> PipelineSearch:
    """The reference plans (all-max, all-fastest, all-cheapest) and the useful time range."""
    base = prob.rescore(prob.allmax_plan())
    search = PipelineSearch(prob, base)
    search.candidates.append(Candidate(base.time_s, base.energy_j, prob.allmax_plan()))
    fastest = prob.fastest_choice()
    r = add_choice(search, fastest, None)
    search.t_min_s = r.time_s
    # beyond the time of the plan where every computation sits at its cheapest hull vertex,
    # slowing down only adds blocking energy
    hull = relaxation(prob).hull
    cheapest = np.array([hull[k][-1] for k in prob.op_key])
    r = add_choice(search, cheapest, None)
    search.t_max_s = max(r.time_s, search.t_min_s)
    return search


def add_choice(search: PipelineSearch, choice: np.ndarray, deadline_s) -> Candidate:
    plan = search.problem.to_plan(choice)
    res = search.problem.rescore_choice(choice)      # = rescore(plan), without its checks
    cand = Candidate(res.time_s, res.energy_j, plan, deadline_s)
    search.candidates.append(cand)
    return cand


EXACT_MAX_OPTIONS = 64    # up to this many (computation, clock) pairs, also solve exactly (MILP)


def plan_at(search: PipelineSearch, deadline_s: float, thorough: bool = True) -> Candidate:
    """Relax at T, round, fill, re-score; records the bound. The plan's time is <= T.
    Small problems are also solved exactly (pipeline_milp), so their frontier is the exact
    discrete one at every solved T."""
    prob = search.problem
    deadline_s = max(float(deadline_s), search.t_min_s)
    durations, bound = relaxation(prob).solve(deadline_s)
    search.bounds[deadline_s] = bound
    search.relaxed[deadline_s] = durations
    best = round_all(search, durations, deadline_s, thorough)
    if sum(len(prob.options[k].time_s) for k in prob.op_key) <= EXACT_MAX_OPTIONS and \
            _highspy():
        from .pipeline_milp import milp_plan

        choice, _, _ = milp_plan(prob, deadline_s, time_limit_s=2.0)
        if choice is not None:
            cand = add_choice(search, choice, deadline_s)
            if cand.energy_j < best.energy_j:
                best = cand
    return best


def round_all(search: PipelineSearch, durations: np.ndarray, deadline_s: float,
              thorough: bool = False) -> Candidate:
    """The roundings of one relaxed solution, slack-filled and re-scored; returns the best.
    ``thorough`` adds rounding to the nearest hull vertex repaired by crashing (slower)."""
    prob = search.problem
    best = None
    choices = [round_down(prob, durations), round_diffuse(prob, durations, deadline_s)]
    if thorough:
        choices.append(crash(prob, round_hull(prob, durations, 0.5), deadline_s))
    for choice in choices:
        if choice is None:
            continue
        cand = add_choice(search, fill_slack(prob, choice, deadline_s), deadline_s)
        if best is None or cand.energy_j < best.energy_j:
            best = cand
    return best


def interpolate(search: PipelineSearch, t_a: float, t_b: float, between: int) -> None:
    """Plans between two solved times without another LP: the relaxation's feasible set is
    convex, so a mix of the two relaxed solutions is feasible for the mixed time (and optimal
    wherever both lie on one linear piece of the parametric optimum)."""
    prob = search.problem
    d_a, d_b = search.relaxed[t_a], search.relaxed[t_b]
    for j in range(1, between + 1):
        a = j / (between + 1)
        t = (1 - a) * t_a + a * t_b
        round_all(search, (1 - a) * d_a + a * d_b, t)


THOROUGH_MAX_OPS = 512    # above this, crash repair (O(ops) per step) costs more than it gains


def pipeline_frontier(prob: PipelineProblem, points: int = 24, between: int = 3,
                      thorough: bool | None = None,
                      progress: Callable[[int, int], None] | None = None) -> PipelineSearch:
    """The first pass: relaxations at ``points`` iteration times spread over the useful range
    plus the all-max-clock time itself (the iso-time target), ``between`` interpolated plans
    between neighbouring ones. ``thorough`` (default: on for up to THOROUGH_MAX_OPS
    computations) also tries the crash-repaired hull rounding at every solved time."""
    if thorough is None:
        thorough = prob.num_ops <= THOROUGH_MAX_OPS
    search = start_search(prob)
    lo, hi = search.t_min_s, search.t_max_s
    # from slow to fast: neighbouring LPs then differ little and HiGHS restarts warm
    grid = sorted(set(np.linspace(lo, hi, max(points, 2)).tolist()) |
                  {search.baseline.time_s}, reverse=True)
    total = 2 * len(grid) - 1
    for j, t in enumerate(grid):
        plan_at(search, t, thorough)
        if progress is not None:
            progress(j + 1, total)
    for j, (t_a, t_b) in enumerate(zip(grid[:-1], grid[1:])):
        interpolate(search, t_a, t_b, between)
        if progress is not None:
            progress(len(grid) + j + 1, total)
    return search
