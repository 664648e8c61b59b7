"""From a stage profile to a selected, exactly re-scored pipeline plan: sweep, refine, select."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..model.frontier import Frontier, FrontierPoint
from ..pipeline import PipelinePlan, PipelineResult, StageProfile
from .pipeline import PipelineSearch, choices_of, pipeline_frontier
from .pipeline_problem import PipelineProblem
from .passes import PassReport
from .pipeline_polish import polish
from .refine import refine
from ..objective import Objective
from .select import select, target_time


# the polish's budget in nominal CPU seconds (pipeline_polish.Work: counted work, so the plan is
# the same on every run); beyond POLISH_MAX_OPS it is skipped unless asked for (the
# whole-frontier time targets)
POLISH_S = 60.0
POLISH_MAX_OPS = 512


@dataclass
class PipelinePlanning:
    search: PipelineSearch
    frontier: Frontier
    point: FrontierPoint            # the selected point (choices filled in)
    plan: PipelinePlan
    result: PipelineResult          # the executor's exact re-score of ``plan``
    selection: str
    passes: list[PassReport] = field(default_factory=list)

    @property
    def baseline(self) -> PipelineResult:
        return self.search.baseline

    @property
    def saving(self) -> float:
        return 1.0 - self.result.energy_j / self.baseline.energy_j


def plan_pipeline(profile: StageProfile, kind: str, stages: int, microbatches: int,
                  blocking_power_w: float, selection: str = "iso-time", points: int = 32,
                  between: int = 3, passes: int = 3, tol: float = 5e-3,
                  local_passes: int = 2, virtual_stages: int | None = None,
                  polish_s: float | None = None,
                  progress: Callable[[str, int, int], None] | None = None,
                  on_pass: Callable[[PassReport], None] | None = None) -> PipelinePlanning:
    """The whole search. ``passes`` refinement passes over the frontier (stopping early when
    one gains <= ``tol``), then ``local_passes`` around the selected point, then a polish of
    the selected point's time for ``polish_s`` nominal CPU seconds (pipeline_polish.Work;
    None: POLISH_S where the pipeline has up to POLISH_MAX_OPS computations, else none; 0:
    none). The result is deterministic: the polish counts work rather than reading a clock."""
    sel = Objective.parse(selection)       # bad selections fail before any work
    prob = PipelineProblem(profile, kind, stages, microbatches, blocking_power_w, virtual_stages)
    search = pipeline_frontier(
        prob, points, between,
        progress=(lambda d, t: progress("sweep", d, t)) if progress else None)
    reports: list[PassReport] = []
    if passes > 0:
        reports += refine(search, tol=tol, max_passes=passes, progress=on_pass)
    target = target_time(search.frontier(), sel)
    if local_passes > 0 and target is not None:
        span = (search.t_max_s - search.t_min_s) / max(points, 2)
        reports += refine(search, window=(target - span, target + span), tol=tol / 5,
                          gap_tol=0.0, max_passes=local_passes, target_s=target,
                          progress=on_pass)
    if polish_s is None:
        polish_s = POLISH_S if prob.num_ops <= POLISH_MAX_OPS else 0.0
    if polish_s > 0 and target is not None:
        polish(search, max(target, search.t_min_s), polish_s,
               progress=(lambda d, t: progress("polish", d, t)) if progress else None)
    frontier = search.frontier()
    point = select(frontier, sel)
    plan = search.plan_for(point)
    result = prob.rescore(plan)
    point.choices = choices_of(plan)
    return PipelinePlanning(search, frontier, point, plan, result, str(sel), reports)
