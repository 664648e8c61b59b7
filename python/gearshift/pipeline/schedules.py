"""Program orders read from torch.distributed.pipelining's own schedule objects.

Every multi-stage schedule of torch 2.13 computes ``pipeline_order`` (rank -> list of actions,
``None`` for a bubble) for all ranks in its constructor, from nothing but each stage's
``num_stages``, ``group_size`` and ``group_rank`` (and ``submod`` for the torch.compile check of
the zero-bubble ones). So the schedule is built here on stand-in stages, without a process
group or a model, and its actions are translated to ``(stage, instruction, microbatch)``:
F -> forward, B -> full backward, I/W -> backward input/weight, an OVERLAP_F_B action (DualPipeV)
-> its sub-actions in order; communication, gradient reduction and (un)shard actions are not
computations (the cross-rank edges follow from the data, see order.data_pred).
"""

from __future__ import annotations

import logging

from ..errors import ConfigError, GearshiftError
from .order import B, F, I, W

_TYPE = {"F": F, "B": B, "I": I, "W": W}


class _StandInStage:
    """What a schedule's constructor reads from a PipelineStage."""

    def __init__(self, stage_index: int, num_stages: int, group_size: int, group_rank: int):
        self.stage_index = stage_index
        self.num_stages = num_stages
        self.group_size = group_size
        self.group_rank = group_rank
        self.submod = None
        self.is_first = stage_index == 0
        self.is_last = stage_index == num_stages - 1


def _torch_schedules():
    try:
        import torch.distributed.pipelining.schedules as sched  # noqa: PLC0415
    except ImportError as e:  # torch missing, or built without distributed
        raise ConfigError(f"this pipeline schedule is read from torch.distributed.pipelining, "
                          f"which is not importable ({e})",
                          "install torch (pip install 'gearshift[torch]'), or plan 1f1b/gpipe") \
            from None
    return sched


def _compute_only(cls):
    """``cls`` that stops after its compute actions: the constructor's last step lowers
    ``pipeline_order`` to the runtime's communication actions (send/recv, (un)shard, gradient
    reduction), which the planner never reads and which costs seconds at 16 ranks x 128
    microbatches. The mapping check of that step still runs."""
    if not hasattr(cls, "_prepare_schedule_with_comms"):
        return cls

    def validate_only(self, actions, format="compute_only"):
        self._validate_and_set_stage_mapping(actions)

    return type(cls.__name__, (cls,), {"_prepare_schedule_with_comms": validate_only})


def stage_to_rank(class_name: str, ranks: int, virtual_stages: int) -> list[int]:
    """Which rank holds each model stage: loop-style, or V-style for ZBV and DualPipeV."""
    style = "v" if class_name in ("ScheduleZBVZeroBubble", "ScheduleDualPipeV") else "loop"
    sched = _torch_schedules()
    mapping = sched.generate_stage_to_rank_mapping(ranks, ranks * virtual_stages, style=style)
    return [int(mapping[s]) for s in range(ranks * virtual_stages)]


def torch_order(class_name: str, ranks: int, virtual_stages: int,
                microbatches: int) -> tuple[list[list[tuple[int, int, int]]], list[int]]:
    """(ops of every rank, rank of every stage) of torch's ``class_name`` schedule."""
    sched = _torch_schedules()
    cls = _compute_only(getattr(sched, class_name))
    stage_rank = stage_to_rank(class_name, ranks, virtual_stages)
    num_stages = ranks * virtual_stages
    # the constructor computes every rank's order; rank 0's stages suffice to build it
    if issubclass(cls, sched.PipelineScheduleSingle):
        stand_in = _StandInStage(0, num_stages, ranks, 0)
        stages_arg = stand_in
    else:
        stages_arg = [_StandInStage(s, num_stages, ranks, 0)
                      for s in range(num_stages) if stage_rank[s] == 0]
    # the schedules log their name at INFO on construction; planning builds many
    log = logging.getLogger(sched.__name__)
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        schedule = cls(stages_arg, microbatches)
    except (ValueError, RuntimeError, AssertionError) as e:
        raise ConfigError(f"torch's {class_name} refuses {ranks} ranks x {virtual_stages} "
                          f"stages x {microbatches} microbatches: {e}",
                          "choose a microbatch count the schedule supports (see its message)") \
            from None
    finally:
        log.setLevel(level)
    return actions_to_ops(schedule.pipeline_order, ranks, class_name), stage_rank


def actions_to_ops(pipeline_order: dict, ranks: int,
                   what: str = "the schedule") -> list[list[tuple[int, int, int]]]:
    """torch actions per rank -> ``(stage, instruction, microbatch)`` per rank."""
    out = []
    for r in range(ranks):
        ops: list[tuple[int, int, int]] = []
        for action in pipeline_order.get(r, []):
            ops.extend(_computations(action, what))
        out.append(ops)
    return out


def _computations(action, what: str):
    if action is None:
        return []
    subs = getattr(action, "sub_actions", None)
    if subs:
        return [op for a in subs for op in _computations(a, what)]
    name = str(getattr(action.computation_type, "value", action.computation_type))
    if name not in _TYPE:
        return []                      # send/recv, reduce_grad, (un)shard: not computations
    if action.microbatch_index is None:
        raise GearshiftError(f"{what} has a {name} action without a microbatch",
                             "report this torch version's schedule to gearshift")
    return [(int(action.stage_index), _TYPE[name], int(action.microbatch_index))]
