"""Nanobatching: one microbatch as k nanobatches whose kernels interleave, as Kareus runs it.

The input is a trace of one training step at the *nanobatch* size (microbatch / k), with its
data flow (``KernelRecord.deps``). Its forward and backward kernels are cut into units, each a
run of compute kernels and the collective(s) that end it; the output holds k copies of every
unit, interleaved unit by unit::

    C0(nb0) M0(nb0) C0(nb1) M0(nb1) C1(nb0) M1(nb0) C1(nb1) ...

so the collective of one nanobatch (M0 of nb0) is followed in launch order by compute of the
other (C0 of nb1), which does not read it: a partition cut before each collective holds exactly
Kareus's pair (one sublayer's compute of one nanobatch + the other's collective). Run serially
(one stream, launch order) nothing overlaps, as in Megatron; an overlap window lets the
collective run beside that compute. Each copy's deps point at the same nanobatch's copies; the
optimizer step runs once, after all nanobatches, and reads every copy of what it read
(gradients accumulate over the nanobatches).
"""

from __future__ import annotations

import dataclasses

from ..errors import TraceError
from ..model import KernelRecord, KernelTrace

REPLICATED_PHASES = ("forward", "backward", "other")


def _units(kernels: list[KernelRecord]) -> list[list[int]]:
    """Ordinals of the replicated kernels, cut after each run of collectives and where the
    phase changes."""
    units: list[list[int]] = [[]]
    for i, k in enumerate(kernels):
        if k.phase not in REPLICATED_PHASES:
            continue
        prev = kernels[units[-1][-1]] if units[-1] else None
        # a unit ends after its collectives, and at a phase change (so each phase of the
        # microbatch stays contiguous: every nanobatch's forward before any backward)
        if prev is not None and ((prev.kind == "comm" and k.kind != "comm")
                                 or prev.phase != k.phase):
            units.append([])
        units[-1].append(i)
    return [u for u in units if u]


def nanobatch_inputs(example_inputs, k: int):
    """One nanobatch's share of a step's inputs: dim 0 of every tensor input divided by ``k``
    (a tensor, a tuple/list or a dict of them; other values pass unchanged). The tensors must
    share dim 0 and ``k`` must divide it, as the overlap pass splits the step at run time."""
    import torch  # noqa: PLC0415
    from torch.utils._pytree import tree_flatten, tree_map  # noqa: PLC0415

    if k < 1:
        raise TraceError(f"{k} nanobatches", "split a microbatch into at least 1 nanobatch")
    leaves, _ = tree_flatten(example_inputs)
    sizes = {int(x.shape[0]) for x in leaves if isinstance(x, torch.Tensor) and x.dim()}
    if len(sizes) != 1:
        raise TraceError("the step's tensor inputs do not share a batch dimension (dim 0) "
                         f"to split into {k} nanobatches" + (f" (sizes {sorted(sizes)})"
                                                             if sizes else ""),
                         "pass inputs batched along dim 0, or set nanobatches=1")
    batch = sizes.pop()
    if batch % k:
        raise TraceError(f"a batch of {batch} does not split into {k} equal nanobatches",
                         "pick a nanobatch count that divides the batch size")
    return tree_map(lambda x: x[: batch // k] if isinstance(x, torch.Tensor) and x.dim() else x,
                    example_inputs)


def split_nanobatches(trace: KernelTrace, k: int) -> KernelTrace:
    """The trace of a microbatch of k nanobatches, from ``trace`` taken at the nanobatch size."""
    if k < 1:
        raise TraceError(f"{k} nanobatches", "split a microbatch into at least 1 nanobatch")
    if trace.nanobatches != 1:
        raise TraceError(f"the trace is already split into {trace.nanobatches} nanobatches",
                         "split a trace taken at the nanobatch size once")
    if k == 1:
        return trace
    if not trace.has_deps():
        raise TraceError("the trace records no data flow between kernels (deps), so its "
                         "nanobatches cannot be told apart safely",
                         "trace with the op-level tracer (gearshift trace), which records deps")
    kernels = trace.kernels
    units = _units(kernels)
    tail = [i for i, kr in enumerate(kernels) if kr.phase not in REPLICATED_PHASES]
    in_tail = set(tail)
    if tail and min(tail) < max(i for u in units for i in u):
        raise TraceError("optimizer kernels come before the last forward/backward kernel",
                         "trace one whole training step (forward, backward, then optimizer)")
    pos: list[dict[int, int]] = [{} for _ in range(k)]
    order: list[tuple[int, int]] = []        # (nanobatch, source ordinal)
    for u in units:
        for nb in range(k):
            for i in u:
                pos[nb][i] = len(order)
                order.append((nb, i))
    for i in tail:
        pos[0][i] = len(order)
        order.append((-1, i))
    out: list[KernelRecord] = []
    for nb, i in order:
        src = kernels[i]
        if src.deps is None:
            deps = None
        elif nb >= 0:
            deps = tuple(sorted(pos[nb][d] for d in src.deps))
        else:   # the optimizer reads every nanobatch's gradient
            deps = tuple(sorted({pos[n][d] for d in src.deps for n in range(k) if d in pos[n]}
                                | {pos[0][d] for d in src.deps if d in in_tail}))
        out.append(dataclasses.replace(src, deps=deps, nanobatch=max(nb, 0)))
    meta = dict(trace.meta)
    meta["nanobatches"] = k
    return KernelTrace(out, model=trace.model, source=trace.source, device=trace.device,
                       meta=meta).validate()


__all__ = ["nanobatch_inputs", "split_nanobatches"]
