"""Data-parallel jobs: which collectives the step adds, and one plan per job.

Every rank traces its own step (cheap); ranks exchange their trace signatures through the
process group, so ranks whose steps are identical share a *role*. The first rank of each role
plans, the schedules travel back through the process group, and each role's first rank writes
its schedule file (``sched.json`` for a one-role job, ``sched.role<k>.json`` otherwise). A
planning failure on any leader becomes the same fallback on every rank, so the ranks never
disagree on whether clocks are managed.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

# DDP's defaults (torch/nn/parallel/distributed.py): the first bucket is small so the first
# all-reduce starts early; the rest are bucket_cap_mb (25 MiB)
DDP_FIRST_BUCKET_BYTES = 1 << 20
DDP_BUCKET_BYTES = 25 << 20


def active() -> bool:
    try:
        import torch.distributed as dist  # noqa: PLC0415
    except ImportError:
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def who() -> str:
    """'rank 1/2, local GPU 1' inside a distributed job, else ''."""
    if not active():
        return ""
    import torch.distributed as dist  # noqa: PLC0415

    local = os.environ.get("LOCAL_RANK", str(dist.get_rank()))
    return f"rank {dist.get_rank()}/{dist.get_world_size()}, local GPU {local}"


def _find_ddp(model):
    """The DistributedDataParallel holding ``model`` (compile first, then DDP(model)): DDP
    calls the model's forward without saying so; found once, at the first step."""
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

    for o in gc.get_objects():
        # type(), not isinstance(): a dead weak proxy among the objects raises on the latter
        if issubclass(type(o), DistributedDataParallel) and o.module is model:
            return o
    return None


def data_parallel_spec(runner) -> dict | None:
    """What the tracer adds for data parallelism: DDP's bucketed gradient all-reduce, or FSDP2's
    per-unit all-gather and reduce-scatter. None outside a distributed job."""
    if not active():
        return None
    import torch.distributed as dist  # noqa: PLC0415

    model = runner.model
    from torch.distributed.fsdp import FSDPModule  # noqa: PLC0415

    units = [n for n, m in model.named_modules() if isinstance(m, FSDPModule)]
    if units:
        return {"kind": "fsdp", "world_size": dist.get_world_size(), "units": units}
    ddp = runner.data_parallel or _find_ddp(model)
    if ddp is None:
        return None
    runner.data_parallel = ddp
    cap = int(getattr(ddp, "bucket_bytes_cap", DDP_BUCKET_BYTES) or DDP_BUCKET_BYTES)
    group = getattr(ddp, "process_group", None)
    world = group.size() if group is not None else dist.get_world_size()
    return {"kind": "ddp", "bucket_bytes": cap, "first_bucket_bytes": DDP_FIRST_BUCKET_BYTES,
            "world_size": world}


def role_path(path: str | None, role: int, roles: int) -> str | None:
    if not path or roles == 1:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.role{role}{p.suffix}"))


def agree(runner, trace, failed: BaseException | None = None):
    """(schedule, explanation, frontier summary, role) for this rank, the same on every rank
    of a role; raises any rank's tracing or planning failure on every rank (``failed``: this
    rank's tracing failed; it still takes part, so that no rank waits forever)."""
    import torch.distributed as dist  # noqa: PLC0415

    from ..errors import ConfigError  # noqa: PLC0415
    from ..model import Schedule  # noqa: PLC0415

    rank, world = dist.get_rank(), dist.get_world_size()
    sigs: list = [None] * world
    dist.all_gather_object(sigs, trace.signature() if failed is None else
                           "failed:" + getattr(failed, "problem", f"{type(failed).__name__}: "
                                                                  f"{failed}"))
    bad = [(r, s) for r, s in enumerate(sigs) if s.startswith("failed:")]
    if bad:
        raise ConfigError(f"tracing on rank {bad[0][0]} failed: {bad[0][1][7:]}",
                          "make the step trace on every rank (see that rank's warning)")
    order = list(dict.fromkeys(sigs))
    role = order.index(sigs[rank])
    leader = sigs.index(sigs[rank])
    payload = None
    if rank == leader:
        try:
            path = role_path(runner.config.schedule_path, role, len(order))
            schedule = runner._prepare_local(trace, path)
            payload = {"schedule": schedule.to_json(), "explanation": runner.explanation,
                       "frontier": runner.frontier_summary}
        except Exception as exc:  # noqa: BLE001 (sent to every rank, raised there)
            payload = {"error": getattr(exc, "problem", f"{type(exc).__name__}: {exc}"),
                       "fix": getattr(exc, "fix", None)}
        finally:
            if runner.enforcer is not None:      # made again below, on every rank alike
                runner.enforcer.close()
                runner.enforcer = None
    got: list = [None] * world
    dist.all_gather_object(got, payload)
    errors = [(r, g) for r, g in enumerate(got) if g is not None and "error" in g]
    if errors:
        r, g = errors[0]
        raise ConfigError(f"planning on rank {r} failed: {g['error']}",
                          g.get("fix") or f"see rank {r}'s log")
    mine = got[leader]
    schedule = Schedule.from_json(mine["schedule"])
    note = f" (rank role {role + 1} of {len(order)}, planned on rank {leader})"
    return schedule, mine["explanation"] + note, mine["frontier"], role
