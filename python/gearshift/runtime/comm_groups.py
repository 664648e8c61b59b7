"""One NCCL communicator per SM count a schedule gives communication, created once and reused.

NCCL runs a collective on a number of CTAs (thread blocks, one per SM) it picks itself; a
communicator created with ``ncclConfig_t.minCTAs = maxCTAs = N`` runs every collective on
exactly N. PyTorch exposes that through ``ProcessGroupNCCL.Options().config.min_ctas/max_ctas``
and ``torch.distributed.new_group(..., pg_options=...)``. A schedule that gives partitions
different SM counts therefore needs one communicator per (group, SM count): ``CommGroups``
makes each the first time it is asked for it and routes later requests to the same one.

Other backends (gloo on CPU) have no such limit: the collective stays on its own group and
``skipped_reason`` says why the SM count was not applied.
"""

from __future__ import annotations


def nccl_options(ctas: int):
    """``ProcessGroupNCCL.Options`` whose communicator runs collectives on exactly ``ctas`` CTAs.

    Raises RuntimeError when this PyTorch build has no NCCL, or its NCCL predates per-
    communicator CTA limits (NCCL < 2.17: the options have no ``config``).
    """
    import torch.distributed as dist  # noqa: PLC0415

    if not dist.is_nccl_available():
        raise RuntimeError("this PyTorch build has no NCCL")
    opts = dist.ProcessGroupNCCL.Options()
    if not hasattr(opts, "config"):
        raise RuntimeError("this PyTorch's NCCL has no per-communicator CTA limits (NCCL < 2.17)")
    opts.config.min_ctas = int(ctas)
    opts.config.max_ctas = int(ctas)
    return opts


class CommGroups:
    """Communicators with CTA limits, keyed by (parent group name, CTA count).

    ``route(group_name, ctas)`` returns the name of the group a collective of ``group_name``
    should run on to get ``ctas`` CTAs, and the CTA count applied (None: library default).
    All ranks of the parent group must route the same (group, ctas) pairs in the same order,
    as they do when each runs the same pass over the same graph: creating a communicator is a
    collective call among the group's ranks (``use_local_synchronization``: only they take part).
    """

    def __init__(self, options_factory=nccl_options, backends=("nccl",)):
        self._options_factory = options_factory
        self._backends = tuple(backends)   # backends whose communicators take CTA limits
        self._groups: dict[tuple[str, int], str] = {}
        self.skipped_reason: str | None = None

    @property
    def created(self) -> dict[tuple[str, int], str]:
        return dict(self._groups)

    def route(self, group_name: str, ctas: int) -> tuple[str, int | None]:
        if ctas <= 0:
            return group_name, None
        key = (group_name, int(ctas))
        if key in self._groups:
            return self._groups[key], int(ctas)
        import torch.distributed as dist  # noqa: PLC0415
        from torch.distributed.distributed_c10d import _resolve_process_group  # noqa: PLC0415

        parent = _resolve_process_group(group_name)
        backend = str(dist.get_backend(parent))
        if backend not in self._backends:
            self.skipped_reason = (f"the {backend} backend has no per-communicator SM (CTA) "
                                   "limit; collectives ran with the library default")
            return group_name, None
        try:
            opts = self._options_factory(ctas)
        except RuntimeError as exc:
            self.skipped_reason = f"SM count not applied: {exc}"
            return group_name, None
        ranks = dist.get_process_group_ranks(parent)
        group = dist.new_group(ranks=ranks, backend=backend, pg_options=opts,
                               use_local_synchronization=True,
                               group_desc=f"gearshift_ctas{ctas}")
        self._groups[key] = group.group_name
        return group.group_name, int(ctas)
