"""Trace -> partition -> profile -> search: the whole planning flow for one model and device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .model import Frontier, KernelTrace, Partitioning, Profile, Schedule
from .profile.progress import Stage

if TYPE_CHECKING:  # the config lives with the integrations, which import this module
    from .integrations.config import GearshiftConfig


@dataclass
class Plan:
    trace: KernelTrace
    partitioning: Partitioning
    profile: Profile
    frontier: Frontier
    schedule: Schedule


def plan_for(trace: KernelTrace, device, config: "GearshiftConfig", *, step=None,
             partition_marks=None) -> Plan:
    """Partition ``trace``, profile it on ``device``, search, select by ``config.objective``.

    ``config.nanobatches`` > 1 plans a nanobatched schedule: ``trace`` must be the step split
    that way (``gearshift.trace_step(..., nanobatches=K)``, as ``gearshift trace --nanobatches K``
    splits a zoo model), so its partitions pair one nanobatch's collective with another's
    computation and the overlap options can hide it; the schedule records the split, as
    ``gearshift plan`` records the split of its ``--trace``.

    Raises InfeasibleSelectionError (naming the closest point) when no point meets the objective.
    """
    from .errors import ConfigError  # noqa: PLC0415
    from .partition import partition  # noqa: PLC0415
    from .profile import profile_partitions  # noqa: PLC0415
    from .search.iteration import plan_iteration  # noqa: PLC0415

    if trace.nanobatches != config.nanobatches:
        raise ConfigError(f"the config asks for {config.nanobatches} nanobatches, the trace is "
                          f"split into {trace.nanobatches}",
                          f"trace the step with gearshift.trace_step(..., nanobatches="
                          f"{config.nanobatches})")
    show = config.progress
    with Stage(f"partitioning {len(trace)} kernels", show):
        parts = partition(trace, switch_latency_s=device.capabilities.switch_latency_s)
    prof = profile_partitions(trace, parts, device, min_freq_mhz=config.min_freq_mhz,
                              step_mhz=config.freq_step_mhz, overlaps=config.overlaps,
                              progress=show, step=step, partition_marks=partition_marks)
    with Stage(f"searching the time-energy frontier ({config.objective})", show):
        frontier, schedule = plan_iteration(prof, parts, trace.signature(), device.facts.name,
                                            objective=config.objective,
                                            nanobatches=trace.nanobatches)
    schedule.extra.setdefault("model", trace.model)
    plan = Plan(trace, parts, prof, frontier, schedule)
    if config.artifacts_dir:
        save_artifacts(plan, config.artifacts_dir)
    return plan


def save_artifacts(plan: Plan, directory: str | Path) -> dict[str, Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = {"trace": d / "trace.json", "partitioning": d / "partitioning.json",
           "profile": d / "profile.json", "frontier": d / "frontier.json",
           "schedule": d / "schedule.json"}
    plan.trace.save(out["trace"])
    plan.partitioning.save(out["partitioning"])
    plan.profile.save(out["profile"])
    plan.frontier.save(out["frontier"])
    plan.schedule.save(out["schedule"])
    return out
