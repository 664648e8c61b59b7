"""The op-level tracer records real producer -> consumer data flow, and nanobatch splitting
keeps it (issue #13)."""

from __future__ import annotations

import pytest

from gearshift.errors import FormatError, TraceError
from gearshift.model import KernelRecord, KernelTrace
from gearshift.trace import trace_preset
from gearshift.trace.nanobatch import split_nanobatches


@pytest.fixture(scope="module")
def tiny():
    return trace_preset("gpt-tiny-tp2")


def _find(tr, module, op, start=0):
    return next(i for i, k in enumerate(tr.kernels) if i >= start and k.module == module
                and k.op.endswith(op))


def test_deps_follow_the_data(tiny):
    ks = tiny.kernels
    ag = _find(tiny, "blocks.0.attn", "all_gather_into_tensor")
    qkv = _find(tiny, "blocks.0.attn.qkv", "addmm")
    ln = _find(tiny, "blocks.0.ln_1", "native_layer_norm")
    assert ks[ag].deps == (ln,)                  # the all-gather reads the layer norm
    assert ks[qkv].deps == (ag,)                 # the QKV GEMM reads the all-gather (via wait)
    rs = _find(tiny, "blocks.0.attn", "reduce_scatter_tensor")
    add = _find(tiny, "blocks.0", "add", rs)
    assert rs in ks[add].deps and len(ks[add].deps) == 2   # residual: the stream + the RS
    # every dep is an earlier kernel, and the weights' first readers read nothing produced
    assert all(d < i for i, k in enumerate(ks) for d in k.deps)
    # backward GEMMs read the forward activations they differentiate
    bwd_qkv = [i for i, k in enumerate(ks) if k.phase == "backward"
               and k.module == "blocks.0.attn.qkv" and k.op == "aten::mm"]
    assert bwd_qkv and any(ag in ks[i].deps for i in bwd_qkv)
    # the optimizer reads the gradients (the step counters and weight decay read only state)
    grads = {d for k in ks if k.phase == "optimizer" for d in k.deps
             if ks[d].phase == "backward"}
    assert len(grads) > 10


def test_deps_round_trip_and_are_checked(tiny, tmp_path):
    tiny.save(tmp_path / "t.json")
    back = KernelTrace.load(tmp_path / "t.json")
    assert [k.deps for k in back.kernels] == [k.deps for k in tiny.kernels]
    bad = KernelTrace([KernelRecord("a", deps=()), KernelRecord("b", deps=(1,))])
    with pytest.raises(FormatError, match="not launched before it"):
        KernelTrace.from_json(bad.to_json())
    # a trace without data flow (CUPTI) loads, with deps unknown
    plain = KernelTrace([KernelRecord("a"), KernelRecord("b")])
    assert KernelTrace.from_json(plain.to_json()).kernels[1].deps is None


def test_split_interleaves_nanobatches_and_keeps_their_data_flow(tiny):
    nb = split_nanobatches(tiny, 2)
    fb = [k for k in tiny.kernels if k.phase != "optimizer"]
    opt = [k for k in tiny.kernels if k.phase == "optimizer"]
    assert len(nb) == 2 * len(fb) + len(opt) and nb.nanobatches == 2
    ks = nb.kernels
    for i, k in enumerate(ks):
        if k.phase == "optimizer":
            continue
        assert all(ks[d].nanobatch == k.nanobatch for d in k.deps), i
    # after each collective comes compute of the other nanobatch, which does not read it
    for i, k in enumerate(ks[:-1]):
        nxt = ks[i + 1]
        if k.kind == "comm" and nxt.kind == "compute" and nxt.phase != "optimizer":
            assert nxt.nanobatch != k.nanobatch
            assert i not in nxt.deps
    # the optimizer reads both nanobatches' gradients
    first_opt = next(i for i, k in enumerate(ks) if k.phase == "optimizer")
    readers = {ks[d].nanobatch for i in range(first_opt, len(ks)) for d in ks[i].deps
               if ks[d].phase != "optimizer"}
    assert readers == {0, 1}
    with pytest.raises(TraceError, match="already split"):
        split_nanobatches(nb, 2)
    with pytest.raises(TraceError, match="data flow"):
        split_nanobatches(KernelTrace([KernelRecord("a"), KernelRecord("b")]), 2)


def test_nanobatches_must_divide_the_batch():
    with pytest.raises(TraceError, match="does not split into 3 nanobatches"):
        trace_preset("gpt-tiny", nanobatches=3)
    tr = trace_preset("gpt-tiny", nanobatches=2)
    assert tr.meta["config"]["batch"] == 2 and tr.nanobatches == 2
