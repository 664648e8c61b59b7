"""The overlap pass's parts, one process: the overlap contract, placement of launches and waits
in a hand-built ATen graph, the nanobatch split's refusals, CTA-limited communicator routing."""

from __future__ import annotations

import operator
import warnings

import pytest

torch = pytest.importorskip("torch")
fx = pytest.importorskip("torch.fx")
dist = pytest.importorskip("torch.distributed")

from gearshift.integrations import overlap_pass as op  # noqa: E402
from gearshift.integrations.overlap_pass import SkipOverlap  # noqa: E402
from gearshift.model import Overlap  # noqa: E402

aten = torch.ops.aten
funcol = torch.ops._c10d_functional


# ---------------------------------------------------------------------------- placement


def _graph(nanobatches=2):
    """Per nanobatch: mm -> all_reduce -> wait -> relu -> mm; tagged like split_nanobatches."""
    g = fx.Graph()
    w = g.placeholder("w")
    xs = [g.placeholder(f"x{i}") for i in range(nanobatches)]
    outs = []
    for i, x in enumerate(xs):
        def tag(n, i=i):
            n.meta["custom"] = {op._NB_KEY: i}
            return n
        a = tag(g.call_function(aten.mm.default, (x, w)))
        b = tag(g.call_function(aten.mm.default, (a, w)))
        ar = g.call_function(funcol.all_reduce.default, (b, "sum", "0"))
        wt = g.call_function(funcol.wait_tensor.default, (ar,))
        c = tag(g.call_function(aten.relu.default, (wt,)))
        d = tag(g.call_function(aten.mm.default, (c, w)))
        outs.append(d)
    g.output(tuple(outs))
    return fx.GraphModule(torch.nn.Module(), g)


def _plan(*choices):
    return op.CollectivePlan.per_collective(list(choices))


def _order(gm):
    out = []
    for n in gm.graph.nodes:
        if op._is_collective(n):
            out.append(("launch", n.name))
        elif op._is_wait(n):
            out.append(("wait", n.name))
        elif op.is_compute(n):
            out.append(("op", n.name))
    return out


def _check_dependencies(gm):
    seen = set()
    for n in gm.graph.nodes:
        assert all(a in seen for a in n.all_input_nodes), f"{n} runs before its inputs"
        seen.add(n)


def test_serial_keeps_each_wait_right_after_its_launch():
    gm = _graph()
    applied, per_nb = op.place_collectives(gm, "forward", _plan((1, op.SERIAL)), 0)
    _check_dependencies(gm)
    order = _order(gm)
    for i, (kind, _) in enumerate(order):
        if kind == "launch":
            assert order[i + 1][0] == "wait"
    assert per_nb == 1
    assert [a["completion_op"] for a in applied] == [None, None]


def test_window_runs_the_other_nanobatchs_ops_beside_the_collective():
    gm = _graph()
    applied, _ = op.place_collectives(gm, "forward", _plan((3, Overlap.parse("window0-1"))), 0)
    _check_dependencies(gm)
    order = [k for k, _ in _order(gm)]
    # nb0: mm mm launch | nb1: mm mm (window ops 0, 1) | wait nb0 ...
    assert order[:6] == ["op", "op", "launch", "op", "op", "wait"]
    a0 = next(a for a in applied if a["nanobatch"] == 0)
    assert (a0["launch_op"], a0["completion_op"], a0["partition"]) == (0, 1, 3)


def test_window_launch_op_delays_the_launch_and_data_clamps_the_wait():
    gm = _graph()
    applied, _ = op.place_collectives(gm, "forward", _plan((1, Overlap.parse("window1-40"))), 0)
    _check_dependencies(gm)
    a0 = next(a for a in applied if a["nanobatch"] == 0)
    assert a0["launch_op"] == 1           # one of nanobatch 1's mms ran before the launch
    assert a0["completion_op"] == 1       # only its second mm was left: the wait is forced there
    order = [k for k, _ in _order(gm)]
    # nanobatch 1's launch comes when nothing else is ready, then nanobatch 0's forced wait
    assert order[:7] == ["op", "op", "op", "launch", "op", "launch", "wait"]


def test_recording_inserts_runtime_events_in_the_placed_order():
    gm = _graph()
    op.place_collectives(gm, "forward", _plan((1, Overlap.parse("window0-1"))), 0, record=True)
    op.recorded_events(clear=True)
    w = torch.randn(3, 3)
    # run with a stand-in collective: the graph only needs all_reduce to return a tensor
    for n in gm.graph.nodes:
        if op._is_collective(n):
            n.target, n.args = aten.clone.default, (n.args[0],)
        elif op._is_wait(n):
            n.target = aten.clone.default
    gm.recompile()
    gm(w, torch.randn(2, 3), torch.randn(2, 3))
    ev = [e[0] for e in op.recorded_events(clear=True)]
    assert ev[:6] == ["op", "op", "launch", "op", "op", "wait"]


def test_non_functional_collective_is_not_moved():
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.call_function(aten.mm.default, (x, x))
    ar = g.call_function(torch.ops.c10d.allreduce_.default, ([y], None, None, None, False))
    g.output(ar)
    gm = fx.GraphModule(torch.nn.Module(), g)
    with pytest.raises(SkipOverlap, match="not a functional collective"):
        op.place_collectives(gm, "forward", _plan((1, op.SERIAL)), 0)


def test_more_collectives_than_the_traced_step_is_refused():
    with pytest.raises(SkipOverlap, match="more collectives than the traced step"):
        op.place_collectives(_graph(), "backward", _plan((1, op.SERIAL)), 1)


# ---------------------------------------------------------------------------- the split


def _capture(model, x, dynamic):
    graphs = []

    def backend(gm, ex):
        graphs.append((gm, ex, {n: dict(n.meta) for n in gm.graph.nodes}))
        return gm.forward

    torch._dynamo.reset()
    if dynamic:
        torch._dynamo.mark_dynamic(x, 0)
    torch.compile(model, backend=backend)(x)
    torch._dynamo.reset()
    gm, ex, meta = graphs[0]
    for n, m in meta.items():    # dynamo drops example values after compiling
        n.meta.update(m)
    return gm, ex


def test_split_gives_the_unsplit_result():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    x = torch.randn(6, 8)
    gm, ex = _capture(model, x, dynamic=True)
    split = op.split_nanobatches(gm, 2, ex)
    op.check_split(gm, split, ex)
    cats = [n for n in split.graph.nodes if n.target is torch.cat]
    assert len(cats) == 1
    assert len([n for n in split.graph.nodes if n.op == "call_module" or "linear" in str(
        n.target)]) == 4    # two linears per nanobatch


def test_split_refuses_a_static_batch_and_batch_norm():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    gm, ex = _capture(model, torch.randn(4, 8), dynamic=False)
    with pytest.raises(SkipOverlap, match="static batch size"):
        op.split_nanobatches(gm, 2, ex)
    bn = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))
    gm, ex = _capture(bn, torch.randn(4, 8), dynamic=True)
    with pytest.raises(SkipOverlap, match="batch_norm|mutates"):
        op.split_nanobatches(gm, 2, ex)


def test_split_refuses_an_output_without_batch_dimension():
    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.l(x).square().mean()

    gm, ex = _capture(Loss(), torch.randn(4, 8), dynamic=True)
    with pytest.raises(SkipOverlap, match="no batch dimension"):
        op.split_nanobatches(gm, 2, ex)


def test_skip_warns_once_and_status_says_why():
    st = op.OverlapState()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        st.skip("a graph break")
        st.skip("a graph break")
    assert len([x for x in w if "overlap is not applied (a graph break)" in str(x.message)]) == 1
    s = st.status()
    assert s["overlap_applied"] is False and s["overlap_skipped_reason"] == "a graph break"
    assert s["nanobatches"] == 1 and s["partitions"] == []


# ---------------------------------------------------------------------------- communicators


@pytest.fixture
def gloo_world(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0,
                            world_size=1)
    yield dist.group.WORLD
    dist.destroy_process_group()


def test_gloo_gets_no_sm_count_and_says_so(gloo_world):
    from gearshift.runtime.comm_groups import CommGroups

    groups = CommGroups()
    name, ctas = groups.route(gloo_world.group_name, 8)
    assert (name, ctas) == (gloo_world.group_name, None)
    assert "gloo" in groups.skipped_reason and not groups.created
    assert groups.route(gloo_world.group_name, 0) == (gloo_world.group_name, None)


def test_one_communicator_per_sm_count_created_once(gloo_world):
    from gearshift.runtime.comm_groups import CommGroups

    made = []

    def options(ctas):          # gloo takes no CTA options; this checks the routing alone
        made.append(ctas)
        return None

    groups = CommGroups(options_factory=options, backends=("gloo",))
    a, ca = groups.route(gloo_world.group_name, 8)
    b, cb = groups.route(gloo_world.group_name, 8)
    c, cc = groups.route(gloo_world.group_name, 16)
    assert a == b != c and a != gloo_world.group_name
    assert (ca, cb, cc) == (8, 8, 16) and made == [8, 16]
    # the routed group works
    t = torch.ones(3)
    from torch.distributed.distributed_c10d import _resolve_process_group

    dist.all_reduce(t, group=_resolve_process_group(a))
    assert t.tolist() == [1.0, 1.0, 1.0]


def test_nccl_options_refuse_clearly_without_nccl():
    from gearshift.runtime.comm_groups import nccl_options

    if dist.is_nccl_available():
        opts = nccl_options(4)
        assert (opts.config.min_ctas, opts.config.max_ctas) == (4, 4)
    else:
        with pytest.raises(RuntimeError, match="no NCCL"):
            nccl_options(4)


def test_collective_plan_maps_comm_kernels_to_their_partitions():
    from types import SimpleNamespace

    kinds = ["compute", "comm", "compute", "compute", "comm", "comm"]
    trace = SimpleNamespace(kernels=[SimpleNamespace(kind=k) for k in kinds])
    entries = [SimpleNamespace(start_kernel=0, overlap=Overlap.parse("none")),
               SimpleNamespace(start_kernel=1, overlap=Overlap.parse("window0-2/sms=8")),
               SimpleNamespace(start_kernel=4, overlap=Overlap.parse("none"))]
    sched = SimpleNamespace(entries=entries, nanobatches=2)
    plan = op.collective_plan(sched, trace)
    assert plan.per_nanobatch == 3
    assert [plan.get(k, nb) for k in range(3) for nb in (0, 1)] == [
        (1, Overlap.window(0, 2, 8))] * 2 + [(2, op.SERIAL)] * 4     # unsplit trace: any nb
    assert op.nanobatches_of(sched) == 2 and op.wants_overlap(sched)
    sched1 = SimpleNamespace(entries=[SimpleNamespace(start_kernel=0,
                                                      overlap=Overlap.parse("serial"))],
                             nanobatches=1)
    assert not op.wants_overlap(sched1)


def test_collective_plan_of_a_nanobatch_split_trace():
    from types import SimpleNamespace

    # C0(nb0) M0(nb0) | C0(nb1) M0(nb1) | ...: each nanobatch's own k-th collective
    ks = [("compute", 0), ("comm", 0), ("compute", 1), ("comm", 1), ("compute", 0),
          ("comm", 0), ("compute", 1), ("comm", 1)]
    trace = SimpleNamespace(nanobatches=2, kernels=[SimpleNamespace(kind=k, nanobatch=nb)
                                                    for k, nb in ks])
    entries = [SimpleNamespace(start_kernel=s, overlap=Overlap.parse(o)) for s, o in
               [(0, "none"), (1, "window0-1"), (3, "window0-2"), (5, "serial"), (7, "window1-1")]]
    plan = op.collective_plan(SimpleNamespace(entries=entries, nanobatches=2), trace)
    assert plan.per_nanobatch == 2
    assert plan.get(0, 0) == (1, Overlap.window(0, 1)) and plan.get(0, 1) == (2, Overlap.window(0, 2))
    assert plan.get(1, 0) == (3, op.SERIAL) and plan.get(1, 1) == (4, Overlap.window(1, 1))
    with pytest.raises(SkipOverlap, match="split into 2 nanobatches, the schedule into 3"):
        op.collective_plan(SimpleNamespace(entries=entries, nanobatches=3), trace)


# ---------------------------------------------------------------------------- gearshift.compile


def _nanobatch_plan(nanobatches):
    """A planner whose schedule is one partition at the top clock, split into nanobatches."""
    from types import SimpleNamespace

    from gearshift.model import Partitioning, Schedule, ScheduleEntry

    def plan_for(trace, device, config, **_):
        parts = Partitioning.from_cuts(trace, [0])
        entry = ScheduleEntry(0, 0, device.facts.max_freq_mhz, Overlap.parse("none"),
                              parts.partitions[0].signature, "all")
        sched = Schedule([entry], trace.signature(), device.facts.name, len(trace),
                         nanobatches=nanobatches)
        return SimpleNamespace(schedule=sched, partitioning=parts,
                               frontier=SimpleNamespace(baseline=None))

    return plan_for


class _Breaks(torch.nn.Module):
    def __init__(self, graph_break):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 16), torch.nn.Linear(16, 1)
        self.graph_break = graph_break

    def forward(self, x):
        h = torch.relu(self.a(x))
        if self.graph_break:
            torch._dynamo.graph_break()
        return self.b(h)


def _losses(model, steps=3):
    torch.manual_seed(5)
    x, y = torch.randn(6, 8), torch.randn(6, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    out = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        out.append(loss.item())
    return out


@pytest.mark.parametrize("graph_break", [False, True])
def test_compile_splits_nanobatches_or_says_why_not(monkeypatch, graph_break):
    import copy
    import sys

    import gearshift
    from gearshift.integrations import wrap

    monkeypatch.setattr(sys.modules[wrap.Runner.__module__], "plan_for", _nanobatch_plan(2))
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Breaks(graph_break)
    want = _losses(copy.deepcopy(model))
    wrapped = gearshift.compile(model, device="sim", sim_preset="h100-sxm", progress=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = _losses(wrapped)
    st = wrapped.gearshift.status()
    wrapped.gearshift.close()
    torch._dynamo.reset()
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-5
    if graph_break:
        assert st["overlap_applied"] is False and "more than one graph" in st[
            "overlap_skipped_reason"]
        assert st["nanobatches"] == 1
        assert len([x for x in w if "overlap is not applied" in str(x.message)]) == 1
    else:
        assert st["overlap_applied"] is True and st["overlap_skipped_reason"] is None
        assert st["nanobatches"] == 2 and st["partitions"] == []


def test_runner_fallback_leaves_the_step_untouched():
    from types import SimpleNamespace

    sched = SimpleNamespace(entries=[], nanobatches=2)
    runner = SimpleNamespace(schedule=sched, fallback_reason=None)
    module = torch.nn.Linear(2, 2)
    assert op.module_call(runner, module) is not module     # the schedule asks for nanobatches
    runner.fallback_reason = "clock refused"
    assert op.module_call(runner, module) is module


def test_a_step_dynamo_cannot_capture_runs_eagerly(monkeypatch):
    from types import SimpleNamespace

    runner = SimpleNamespace(schedule=SimpleNamespace(entries=[], nanobatches=2))

    def broken(*a, **k):
        def fn(*args, **kwargs):
            raise RuntimeError("dynamo internal error")
        return fn

    monkeypatch.setattr(torch, "compile", broken)
    module = torch.nn.Linear(2, 2)
    x = torch.randn(3, 2)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = op.module_call(runner, module)(x)
    assert torch.equal(out, module(x))
    assert "could not capture the step: RuntimeError" in runner.overlap.skipped_reason
    assert op.module_call(runner, module) is module
