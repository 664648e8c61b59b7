"""The in-loop phases of every rank of a distributed job, kept in step.

Ranks of a tensor-parallel group launch their collectives in the order the overlap pass placed
them; if two ranks ran different probes (a round ended on one and not the other, one re-profiled
a drifted partition), their collectives would pair up wrongly or wait forever. So every rank
decides phase changes together, once per training step, with one small all-reduce (MAX) of:

- fallback: rank+1 of a rank that fell back (all fall back: clocks at defaults everywhere);
- refused: rank+1 of a rank whose GPU refused a clock lock (all go to predicted mode);
- more: a rank whose profiling round has not yet reached its error bound (the round goes on);
- drifted: per partition, a rank that saw it drift (all re-profile those partitions).

Requests and the plan come from rank 0 (``lead``): it broadcasts the next probe and its
schedule, so every rank runs the same overlap; each rank measures with its own GPU. A rank that
falls back takes part in one more step's agreement, so the others learn it instead of waiting.
Outside a distributed job every call is local and free.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Agreed:
    fallback_rank: int | None = None
    refused_rank: int | None = None
    more: bool = False
    drifted: list[int] = field(default_factory=list)


class Lockstep:
    def __init__(self):
        from . import distributed  # noqa: PLC0415

        self.active = distributed.active()
        self.released = False          # a fallback was agreed: no more agreement
        self.synced = False            # this step took part already
        self.rank = 0
        if self.active:
            import torch.distributed as dist  # noqa: PLC0415

            self.rank = dist.get_rank()

    def begin(self) -> None:
        self.synced = False

    def _device(self):
        import torch.distributed as dist  # noqa: PLC0415

        if "nccl" in str(dist.get_backend()).lower():
            import torch  # noqa: PLC0415

            return torch.device("cuda", torch.cuda.current_device())
        return "cpu"

    def sync(self, num_partitions: int, *, fallback=False, refused=False, more=False,
             drifted=()) -> Agreed:
        """This step's agreement (see the module docstring); local values outside a job."""
        self.synced = True
        if not self.active or self.released:
            return Agreed(self.rank if fallback else None, self.rank if refused else None,
                          bool(more), sorted(set(drifted)))
        import torch  # noqa: PLC0415
        import torch.distributed as dist  # noqa: PLC0415

        t = torch.zeros(3 + num_partitions, dtype=torch.int64)
        t[0] = self.rank + 1 if fallback else 0
        t[1] = self.rank + 1 if refused else 0
        t[2] = 1 if more else 0
        for p in drifted:
            t[3 + p] = 1
        t = t.to(self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        v = t.cpu().tolist()
        out = Agreed(v[0] - 1 if v[0] else None, v[1] - 1 if v[1] else None, bool(v[2]),
                     [p for p in range(num_partitions) if v[3 + p]])
        if out.fallback_rank is not None:
            self.released = True
        return out

    def end(self, num_partitions: int, fell_back: bool) -> None:
        """After a step in which this rank did not take part (it fell back before, or during,
        the step): take part now, so that the other ranks learn it."""
        if self.active and not self.synced and not self.released:
            self.sync(num_partitions, fallback=fell_back)

    def lead(self, obj):
        """Rank 0's ``obj`` on every rank (the next probe, the schedule)."""
        if not self.active:
            return obj
        import torch.distributed as dist  # noqa: PLC0415

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def lead_call(self, fn):
        """``fn()`` run on rank 0, its result on every rank; a failure there raises on every
        rank (each then falls back), rather than leaving the others waiting."""
        if not self.active:
            return fn()
        payload, error = None, None
        if self.rank == 0:
            try:
                payload = ("ok", fn())
            except Exception as exc:  # noqa: BLE001 (re-raised below, after the others know)
                error = exc
                payload = ("error", getattr(exc, "problem", f"{type(exc).__name__}: {exc}"))
        got = self.lead(payload)
        if error is not None:
            raise error
        if got[0] == "error":
            from ..errors import ConfigError  # noqa: PLC0415

            raise ConfigError(f"rank 0 failed: {got[1]}", "see rank 0's warning")
        return got[1]

    def gather(self, obj) -> list:
        if not self.active:
            return [obj]
        import torch.distributed as dist  # noqa: PLC0415

        out: list = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
