"""The data-parallel collectives of a traced step (DDP, FSDP2), placed where they launch.

The tracer runs a copy of the model alone, so the wrapper's collectives never dispatch; they
are added as comm records from the wrapper's own rules: DDP all-reduces gradient buckets (in
reverse parameter order, 1 MiB first, then ``bucket_cap_mb``) as soon as a bucket's last
gradient is accumulated; FSDP2 all-gathers a sharded unit's parameters before its forward and
again before its backward, and reduce-scatters its gradients when the last one is ready.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..model import KernelRecord

_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def ddp_spec(module) -> dict | None:
    """The spec of a DistributedDataParallel passed to the tracer, else None."""
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

    if not isinstance(module, DistributedDataParallel):
        return None
    from ..integrations.distributed import DDP_BUCKET_BYTES, DDP_FIRST_BUCKET_BYTES  # noqa: PLC0415

    group = getattr(module, "process_group", None)
    return {"kind": "ddp", "bucket_bytes": int(getattr(module, "bucket_bytes_cap", 0)
                                               or DDP_BUCKET_BYTES),
            "first_bucket_bytes": DDP_FIRST_BUCKET_BYTES,
            "world_size": group.size() if group is not None else 1}


def _comm(rec, op: str, comm_op: str, nbytes: int, dtype, module: str, phase: str,
          reads=(), writes=()):
    """Append a collective that reads ``reads`` (its deps: the kernels that wrote them) and
    writes ``writes`` (kernels reading them later depend on it)."""
    tag = _DTYPES.get(dtype, "")
    deps = rec._reads([t for t in reads if t is not None])
    rec.records.append(KernelRecord(
        name=f"{op}({nbytes // max(1, torch.empty((), dtype=dtype).element_size())}){tag}",
        kind="comm", comm_op=comm_op, comm_bytes=float(nbytes), bytes_read=float(nbytes),
        bytes_written=float(nbytes), phase=phase, module=module, op=op, deps=deps))
    rec._wrote([t for t in writes if t is not None], (len(rec.records) - 1,))


def _buckets(params, first_bytes: int, bytes_cap: int) -> list[list]:
    out, cur, size = [], [], 0
    for p in reversed(params):
        cur.append(p)
        size += p.numel() * p.element_size()
        if size >= (first_bytes if not out else bytes_cap):
            out.append(cur)
            cur, size = [], 0
    if cur:
        out.append(cur)
    return out


@contextmanager
def collective_hooks(module: torch.nn.Module, rec, spec: dict | None):
    """While tracing ``module``, add ``spec``'s collectives to ``rec`` where they launch."""
    if not spec:
        yield
        return
    handles = []
    params = [p for p in module.parameters() if p.requires_grad]
    if spec["kind"] == "ddp":
        for bucket in _buckets(params, spec["first_bucket_bytes"], spec["bucket_bytes"]):
            # in place on the bucket's gradients: reads what backward wrote, and the
            # optimizer's reads of them wait for it
            handles += _when_all_ready(bucket, lambda b=bucket: _comm(
                rec, "c10d::allreduce_", "all_reduce", sum(p.numel() * p.element_size()
                                                           for p in b),
                b[0].dtype, "ddp", "backward", reads=[p.grad for p in b],
                writes=[p.grad for p in b]))
    elif spec["kind"] == "fsdp":
        handles += _fsdp_hooks(module, rec, spec["units"])
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _when_all_ready(params, fire) -> list:
    """Call ``fire`` once per backward, when every one of ``params`` has its gradient."""
    pending = {id(p) for p in params}
    ready: set = set()

    def hook(p):
        ready.add(id(p))
        if ready == pending:
            ready.clear()
            fire()

    return [p.register_post_accumulate_grad_hook(hook) for p in params]


def _fsdp_hooks(module: torch.nn.Module, rec, unit_names: list[str]) -> list:
    """Hooks on the traced copy's modules named as FSDP2 units in the original model."""
    by_name = dict(module.named_modules())
    units = [by_name[n] for n in unit_names if n in by_name]
    unit_ids = {id(u) for u in units}
    owned: dict[int, list] = {}
    for unit in units:   # a unit's parameters are those not in a nested unit
        inner = {id(p) for u in unit.modules() if u is not unit and id(u) in unit_ids
                 for p in u.parameters()}
        owned[id(unit)] = [p for p in unit.parameters() if id(p) not in inner]
    handles = []
    for name, unit in zip([n for n in unit_names if n in by_name], units):
        ps = owned[id(unit)]
        if not ps:
            continue
        nbytes = sum(p.numel() * p.element_size() for p in ps)
        dtype = ps[0].dtype

        def gather(_m, _inputs, n=nbytes, name=name, dtype=dtype, ps=ps):
            # the unit's kernels read the gathered parameters: they wait for the gather
            _comm(rec, "_c10d_functional::all_gather_into_tensor", "all_gather", n, dtype,
                  name, rec.phase if rec.phase != "optimizer" else "forward", writes=ps)

        handles.append(unit.register_forward_pre_hook(gather))
        # backward: the parameters are gathered again (reshard_after_forward) before the
        # unit's backward, and its gradients reduce-scattered when all are accumulated
        handles.append(unit.register_full_backward_pre_hook(
            lambda m, g, gather=gather: gather(m, g)))
        handles += _when_all_ready([p for p in ps if p.requires_grad], lambda n=nbytes, name=name,
                                   dtype=dtype, ps=ps: _comm(
            rec, "_c10d_functional::reduce_scatter_tensor", "reduce_scatter", n, dtype, name,
            "backward", reads=[p.grad for p in ps], writes=[p.grad for p in ps]))
    return handles
