"""The overlap half of a schedule, applied to the captured training step (docs/overlap.md).

A schedule chooses per partition an SM clock (enforced by the runtime) and an overlap. This
module applies the overlap to the step that dynamo captured:

1. **nanobatches**: the captured forward graph is replicated once per nanobatch on slices of
   its batch-dimension inputs (dim 0 of the step's own arguments; parameters and buffers are
   shared), and the outputs are concatenated back. The first step's outputs are compared with
   the unsplit graph's; a step that mixes samples across the batch is left unsplit.
2. **launch and wait**: AOTAutograd turns the split step into forward and backward ATen graphs,
   in which every tensor-parallel collective is a functional collective
   (``_c10d_functional.<op>``, asynchronous) followed by its ``wait_tensor``. A list scheduler
   re-orders each graph: a collective is launched before compute op ``L`` of its window and
   waited after compute op ``C``; a wait is placed before the first consumer of its result at
   the latest, so data dependencies always hold. ``serial`` waits right after the launch.
3. **SM count**: a collective whose partition chose ``/sms=N`` runs on a communicator created
   with N CTAs (runtime/comm_groups.py).

The transformed graphs run as the FX graphs they are (in the placed order); inductor would
re-order them. Where the step cannot be transformed (more than one graph, a collective that is
not functional, inputs without a common batch dimension, ...) it runs untransformed under its
clocks and ``OverlapState.skip`` warns once with the reason.
"""

from __future__ import annotations

import heapq
import logging
import operator
import os
import warnings
from dataclasses import dataclass

import torch
import torch.fx as fx

from ..model import Overlap

RECORD_ENV = "GEARSHIFT_OVERLAP_RECORD"   # "1": the transformed graphs log what they run
_COLLECTIVE_NAMESPACES = ("_c10d_functional", "_c10d_functional_autograd")
_WAIT = "wait_tensor"
_NB_KEY = "gearshift_nanobatch"
log = logging.getLogger(__name__)


class SkipOverlap(Exception):
    """The step cannot be transformed; the message is the reason status() reports."""


# --------------------------------------------------------------------------------------------
# The schedule side: what each collective of the step should do


SERIAL = Overlap("serial")


def nanobatches_of(schedule) -> int:
    return max(1, int(getattr(schedule, "nanobatches", 1) or 1))


def wants_overlap(schedule) -> bool:
    """Whether the schedule asks the program for anything beyond the framework's default."""
    if schedule is None:
        return False
    return nanobatches_of(schedule) > 1 or any(
        e.overlap.mode == "window" or e.overlap.comm_sms for e in schedule.entries)


@dataclass
class CollectivePlan:
    """(partition, overlap) of collective ``k`` of nanobatch ``nb`` of the step.

    ``per_nanobatch``: collectives one nanobatch's step launches (forward, then backward in
    autograd's order). ``traced_nanobatches`` 1: the trace was not split, so every nanobatch's
    copy of collective k takes the same choice.
    """

    choices: dict[tuple[int, int], tuple[int, Overlap]]
    per_nanobatch: int
    traced_nanobatches: int = 1
    default: tuple[int, Overlap] | None = None   # every collective's choice when set

    @classmethod
    def serial(cls) -> "CollectivePlan":
        """Every collective serial (the framework's placement): what a step split into
        nanobatches runs before any schedule exists (the in-loop record and plan steps)."""
        return cls({}, 0, default=(0, SERIAL))

    def key(self) -> tuple:
        """What the placement depends on (two plans with one key place alike)."""
        if self.default is not None:
            return ("default", self.default[0], self.default[1].key())
        return tuple(sorted((k, nb, p, ov.key()) for (k, nb), (p, ov) in self.choices.items()))

    @classmethod
    def per_collective(cls, choices: list[tuple[int, Overlap]]) -> "CollectivePlan":
        return cls({(k, 0): c for k, c in enumerate(choices)}, len(choices))

    def get(self, k: int, nanobatch: int) -> tuple[int, Overlap] | None:
        if self.default is not None:
            return self.default
        return self.choices.get((k, nanobatch if self.traced_nanobatches > 1 else 0))


def collective_plan(schedule, trace) -> CollectivePlan:
    """The k-th collective of a nanobatch's step is that nanobatch's k-th communication kernel
    of the traced step (of nanobatch 0 when the trace is not split); the partition holding that
    kernel gives its overlap. A partition with ``none`` that holds a collective runs it serial.
    """
    traced = int(getattr(trace, "nanobatches", 1) or 1)
    if traced > 1 and traced != nanobatches_of(schedule):
        raise SkipOverlap(f"the trace is split into {traced} nanobatches, the schedule into "
                          f"{nanobatches_of(schedule)}; re-plan for this model")
    starts = [e.start_kernel for e in schedule.entries]
    choices: dict[tuple[int, int], tuple[int, Overlap]] = {}
    counts: dict[int, int] = {}
    p = 0
    for i, kr in enumerate(trace.kernels):
        while p + 1 < len(starts) and starts[p + 1] <= i:
            p += 1
        if kr.kind != "comm":
            continue
        nb = int(getattr(kr, "nanobatch", 0) or 0) if traced > 1 else 0
        k = counts.get(nb, 0)
        counts[nb] = k + 1
        choice = schedule.entries[p].overlap
        choices[(k, nb)] = (p, SERIAL if choice.mode == "none" else choice)
    if len(set(counts.values())) > 1:
        raise SkipOverlap("the traced nanobatches launch different numbers of collectives")
    return CollectivePlan(choices, max(counts.values(), default=0), traced)


# --------------------------------------------------------------------------------------------
# The state a runner keeps, and what status() reports


class OverlapState:
    """What was applied to one wrapped model's step; ``status()`` feeds the runner's status."""

    def __init__(self):
        self.applied = False
        self.skipped_reason: str | None = None
        self.nanobatches = 1
        self.partitions: list[dict] = []
        self.comm_sms_skipped_reason: str | None = None
        self.graphs_seen = 0
        self.schedule_applied = None     # the schedule whose plan the last step placed
        self._warned = False

    def skip(self, reason: str) -> None:
        """Clocks only from now on; one warning names the reason."""
        self.applied = False
        self.skipped_reason = reason
        self.nanobatches = 1
        self.partitions = []
        self.schedule_applied = None
        if not self._warned:
            self._warned = True
            warnings.warn(f"gearshift: the schedule's overlap is not applied ({reason}); only "
                          "its clocks are enforced", stacklevel=3)

    def status(self) -> dict:
        return {"overlap_applied": self.applied, "overlap_skipped_reason": self.skipped_reason,
                "nanobatches": self.nanobatches,
                "partitions": [dict(p) for p in self.partitions],
                "comm_sms_skipped_reason": self.comm_sms_skipped_reason}


def state_of(runner) -> OverlapState:
    st = getattr(runner, "overlap", None)
    if not isinstance(st, OverlapState):
        st = OverlapState()
        runner.overlap = st
    return st


# --------------------------------------------------------------------------------------------
# Nanobatch split of the dynamo graph


def _is_data_input(node: fx.Node) -> bool:
    """A tensor the step was called with (its dynamo source starts at a local other than the
    module: ``L['x']``, ``L['args'][0]``), not a parameter or buffer (``L['self']...``)."""
    src = getattr(node.meta.get("grapharg"), "source", None)
    while getattr(src, "base", None) is not None:
        src = src.base
    if type(src).__name__ != "LocalSource" or getattr(src, "local_name", "") in ("self", "fn"):
        return False
    val = node.meta.get("example_value")
    return isinstance(val, torch.Tensor) and not isinstance(val, torch.nn.Parameter)


_BATCH_MIXING = ("batch_norm", "instance_norm")
_RANDOM = ("dropout", "rand", "bernoulli", "normal", "multinomial")


def _target_name(node: fx.Node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def split_nanobatches(gm: fx.GraphModule, n: int, example_inputs=None) -> fx.GraphModule:
    """The step of ``gm`` run as ``n`` nanobatches along dim 0 of its data inputs.

    The batch dimension must be symbolic in the graph (dynamic): a static size is baked into the
    graph's views and reshapes, which a smaller nanobatch would break.
    """
    placeholders = [p for p in gm.graph.nodes if p.op == "placeholder"]
    data = [p for p in placeholders if _is_data_input(p)]
    if not data:
        raise SkipOverlap("the step has no tensor argument to split into nanobatches")
    dims = {str(p.meta["example_value"].shape[0]) if p.meta["example_value"].dim() else None
            for p in data}
    if len(dims) != 1 or None in dims:
        raise SkipOverlap("the step's tensor arguments do not share a batch dimension (dim 0) "
                          "to split into nanobatches")
    batch_dim = data[0].meta["example_value"].shape[0]
    if not isinstance(batch_dim, torch.SymInt):
        raise SkipOverlap("the captured step has a static batch size baked into its shapes; mark "
                          "the batch dimension dynamic (torch._dynamo.mark_dynamic(x, 0)) before "
                          "the first call, as gearshift.compile does")
    batch = None
    if example_inputs is not None:
        i = placeholders.index(data[0])
        if i < len(example_inputs) and isinstance(example_inputs[i], torch.Tensor):
            batch = int(example_inputs[i].shape[0])
    if batch is not None and batch < n:
        raise SkipOverlap(f"a batch of {batch} cannot be split into {n} nanobatches")
    # the graph reads the batch size from a SymInt input; per nanobatch it is the slice's size
    batch_syms = [p for p in placeholders if isinstance(p.meta.get("example_value"), torch.SymInt)
                  and str(p.meta["example_value"]) == str(batch_dim)]
    for node in gm.graph.nodes:
        name = _target_name(node).lower()
        if node.op in ("call_function", "call_method") and any(b in name for b in _BATCH_MIXING):
            raise SkipOverlap(f"{_target_name(node)} mixes samples across the batch; nanobatches "
                              "would change its result")
        if node.op == "call_method" and name.endswith("_") and not name.startswith("_"):
            raise SkipOverlap(f"the step mutates a tensor in place ({name}); running it once per "
                              "nanobatch would repeat the mutation")

    # nodes that read a data input run once per nanobatch; the rest (weights' views) once
    per_nb: set[fx.Node] = set(data) | set(batch_syms)
    for node in gm.graph.nodes:
        if node.op != "placeholder" and any(a in per_nb for a in node.all_input_nodes):
            per_nb.add(node)

    g = fx.Graph()
    shared: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            shared[node] = g.node_copy(node)
    for node in gm.graph.nodes:
        if node.op not in ("placeholder", "output") and node not in per_nb:
            shared[node] = g.node_copy(node, lambda a: shared[a])
    pieces = {p: g.call_function(torch.tensor_split, (shared[p], n, 0)) for p in data}
    envs = []
    for i in range(n):
        env = dict(shared)
        for p in data:
            env[p] = g.call_function(operator.getitem, (pieces[p], i))
        for sym in batch_syms:
            env[sym] = g.call_method("size", (env[data[0]], 0))
        for node in gm.graph.nodes:
            if node in per_nb and node.op not in ("placeholder", "output"):
                new = g.node_copy(node, lambda a: env[a])
                new.meta["custom"] = {**(new.meta.get("custom") or {}), _NB_KEY: i}
                env[node] = new
        envs.append(env)

    out_node = next(nd for nd in gm.graph.nodes if nd.op == "output")

    def join(leaf, j):
        if not isinstance(leaf, fx.Node):
            return leaf
        if leaf not in per_nb:
            return shared[leaf]
        val = leaf.meta.get("example_value")
        if not isinstance(val, torch.Tensor) or val.dim() == 0 or (
                str(val.shape[0]) != str(batch_dim)):
            raise SkipOverlap(f"output {j} of the step has no batch dimension (a loss inside "
                              "the model?); nanobatch results cannot be concatenated")
        return g.call_function(torch.cat, ([env[leaf] for env in envs], 0))

    res = out_node.args[0]
    if isinstance(res, (tuple, list)):
        g.output(type(res)(join(leaf, j) for j, leaf in enumerate(res)))
    else:
        g.output(join(res, 0))
    out = fx.GraphModule(gm, g)
    out.recompile()
    return out


def check_split(gm: fx.GraphModule, split: fx.GraphModule, example_inputs) -> None:
    """The split step must compute what the unsplit one does (on the first step's inputs).

    Every rank decides together (a MIN over the default group), so no rank runs nanobatches
    while another does not. Steps with random ops (dropout) are not compared: their masks
    differ with the split, their distribution does not.
    """
    from torch._subclasses.fake_tensor import FakeTensor  # noqa: PLC0415

    if any(isinstance(x, FakeTensor) for x in example_inputs):
        return
    names = [_target_name(nd).lower() for nd in gm.graph.nodes if nd.op != "placeholder"]
    if any(r in nm for nm in names for r in _RANDOM):
        return
    args = [x.node.hint if isinstance(x, torch.SymInt) else x for x in example_inputs]
    with torch.no_grad():
        want, got = gm(*args), split(*args)
    want = [w for w in torch.utils._pytree.tree_leaves(want) if isinstance(w, torch.Tensor)]
    got = [g for g in torch.utils._pytree.tree_leaves(got) if isinstance(g, torch.Tensor)]
    ok = len(want) == len(got) and all(
        w.shape == g.shape and torch.allclose(w.float(), g.float(), rtol=1e-4, atol=1e-5)
        for w, g in zip(want, got))
    import torch.distributed as dist  # noqa: PLC0415

    if dist.is_available() and dist.is_initialized():
        dev = "cpu" if "gloo" in str(dist.get_backend()) else "cuda"
        flag = torch.tensor([1 if ok else 0], device=dev)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = bool(flag.item())
    if not ok:
        raise SkipOverlap("the step's outputs change when its batch is split into nanobatches "
                          "(an op mixes samples across the batch)")


# --------------------------------------------------------------------------------------------
# Launch and wait placement in an ATen graph


def _op_name(node: fx.Node) -> str | None:
    t = node.target
    if node.op != "call_function" or not isinstance(t, torch._ops.OpOverload):
        return None
    return t.name().split(".")[0]


def _is_collective(node: fx.Node) -> bool:
    name = _op_name(node)
    if name is None:
        return False
    ns, _, op = name.partition("::")
    return ns in _COLLECTIVE_NAMESPACES and op != _WAIT


def _is_wait(node: fx.Node) -> bool:
    name = _op_name(node)
    return name is not None and name.endswith("::" + _WAIT)


def is_compute(node: fx.Node) -> bool:
    """An op that launches a device kernel: what a window's op indices count (the tracer's
    rule, trace/kernels.py: views and bookkeeping ops launch none)."""
    from ..trace.kernels import NO_KERNEL_OPS  # noqa: PLC0415

    name = _op_name(node)
    if name is None or name.startswith(_COLLECTIVE_NAMESPACES) or node.target.is_view:
        return False
    return name not in NO_KERNEL_OPS


def _nanobatches(nodes: list[fx.Node]) -> dict[fx.Node, int | None]:
    """The nanobatch whose data each node computes on: its own tag (split_nanobatches puts it
    in ``meta["custom"]``, which AOTAutograd carries to forward and backward nodes), else the
    one nanobatch all its tagged inputs agree on, else None (shared: weights, accumulation)."""
    out: dict[fx.Node, int | None] = {}
    for nd in nodes:
        nb = (nd.meta.get("custom") or {}).get(_NB_KEY)
        if nb is None:
            got = {out[a] for a in nd.all_input_nodes if out.get(a) is not None}
            nb = got.pop() if len(got) == 1 else None
        out[nd] = nb
    return out


_events: list[tuple] = []


def _record(*event) -> None:
    """Runs inside a transformed graph when GEARSHIFT_OVERLAP_RECORD=1: the executed order."""
    _events.append(event)


def recorded_events(clear: bool = False) -> list[tuple]:
    """("launch"|"wait", phase, collective, nanobatch) and ("op", phase) in the order they ran."""
    out = list(_events)
    if clear:
        _events.clear()
    return out


@dataclass
class _Coll:
    node: fx.Node
    order: int                 # position among the graph's collectives
    collective: int            # index of the collective in the unsplit step
    nanobatch: int
    partition: int
    choice: Overlap
    waits: list
    extras: list               # getitem nodes of a coalesced collective's outputs
    ready_ops: int | None = None   # compute ops placed since its input was produced
    launch_op: int | None = None
    completion_op: int | None = None
    launched: bool = False
    waited: bool = False
    cta_count: int | None = None


def place_collectives(gm: fx.GraphModule, phase: str, plan, offset: int, groups=None,
                      record: bool = False) -> tuple[list[dict], int]:
    """Re-order ``gm`` so each collective launches and completes where ``plan`` says.

    ``plan.get(offset + k, nb)`` = (partition, Overlap) of the k-th collective of nanobatch
    ``nb`` in this graph. Returns the applied placements and the collectives per nanobatch.
    """
    graph = gm.graph
    graph.eliminate_dead_code()
    nodes = list(graph.nodes)
    for nd in nodes:
        name = _op_name(nd)
        if name and name.split("::")[0] in ("c10d", "c10d_functional"):
            raise SkipOverlap(f"{name} in the {phase} graph is not a functional collective "
                              "(torch.distributed._functional_collectives); it cannot be moved")
    index = {nd: i for i, nd in enumerate(nodes)}
    nb_of = _nanobatches(nodes)
    colls: list[_Coll] = []
    per_nb: dict[int, int] = {}
    for nd in nodes:
        if not _is_collective(nd):
            continue
        extras = [u for u in nd.users if u.target is operator.getitem]
        waits = [u for u in nd.users if _is_wait(u)] + [
            w for g in extras for w in g.users if _is_wait(w)]
        others = [u for u in nd.users if u not in extras and not _is_wait(u)]
        if not waits or others:
            raise SkipOverlap(f"{_op_name(nd)} in the {phase} graph is used without a "
                              "wait_tensor; it cannot be moved")
        nb = nb_of[nd] or 0
        k = per_nb.get(nb, 0)
        per_nb[nb] = k + 1
        got = plan.get(offset + k, nb)
        if got is None:
            raise SkipOverlap(f"the {phase} graph has more collectives than the traced step "
                              f"({plan.per_nanobatch} per nanobatch); re-plan for this model")
        part, choice = got
        colls.append(_Coll(nd, len(colls), offset + k, nb, part, choice, waits, extras))
    counts = set(per_nb.values())
    if len(counts) > 1:
        raise SkipOverlap(f"the nanobatches of the {phase} graph launch different numbers of "
                          "collectives")
    per_nanobatch = counts.pop() if counts else 0
    by_node = {c.node: c for c in colls}
    wait_of = {w: c for c in colls for w in c.waits}
    special = set(by_node) | set(wait_of) | {g for c in colls for g in c.extras}

    missing = {nd: len(set(nd.all_input_nodes)) for nd in nodes}
    placed: list[fx.Node] = []
    events: list[tuple] = []     # (after which placed node, event tuple) for the recorder
    # ready nodes per nanobatch, by original position; after a nanobatch launches a collective
    # the next nanobatch's work is preferred, so that it is what runs beside the collective
    heaps: dict[int | None, list[tuple[int, fx.Node]]] = {}
    prefer: list[int | None] = [None]
    num_nb = 1 + max((v for v in nb_of.values() if v is not None), default=0)

    def push(nd):
        heapq.heappush(heaps.setdefault(nb_of[nd], []), (index[nd], nd))

    def pop():
        if prefer[0] is not None:
            own = [h for key, h in heaps.items() if h and key in (prefer[0], None)]
            if own:
                return heapq.heappop(min(own, key=lambda h: h[0][0]))[1]
        rest = [h for h in heaps.values() if h]
        return heapq.heappop(min(rest, key=lambda h: h[0][0]))[1] if rest else None
    output = next(nd for nd in nodes if nd.op == "output")

    def release(nd):
        for u in nd.users:
            missing[u] -= 1
            if missing[u] == 0:
                if u in by_node:
                    by_node[u].ready_ops = 0
                elif u not in special and u is not output:
                    push(u)

    def put(nd):
        placed.append(nd)
        release(nd)

    def launch(c):
        c.launched, c.launch_op = True, c.ready_ops
        if num_nb > 1:
            prefer[0] = (c.nanobatch + 1) % num_nb
        if c.choice.comm_sms and groups is not None:
            c.cta_count = _route(c.node, c.choice.comm_sms, groups)
        put(c.node)
        events.append((c.node, ("launch", phase, c.collective, c.nanobatch)))
        for g in c.extras:
            put(g)

    def wait(c):
        c.waited = True
        c.completion_op = c.ready_ops - 1 if c.ready_ops > c.launch_op else None
        events.append((placed[-1], ("wait", phase, c.collective, c.nanobatch)))
        for w in c.waits:
            put(w)

    for nd in nodes:
        if missing[nd] == 0 and nd is not output:
            if nd in by_node:
                by_node[nd].ready_ops = 0
            elif nd not in special:
                push(nd)
    while len(placed) < len(nodes) - 1:
        changed = True
        while changed:
            changed = False
            for c in colls:
                if c.launched and not c.waited and (
                        c.choice.mode != "window" or c.ready_ops > c.choice.complete_op):
                    wait(c)
                    changed = True
                elif (not c.launched and c.ready_ops is not None and
                      (c.choice.mode != "window" or c.ready_ops >= c.choice.launch_op)):
                    launch(c)
                    changed = True
        nd = pop()
        if nd is not None:
            if is_compute(nd):
                # a window op of every collective whose input is already there (not of the one
                # it produces)
                for c in colls:
                    if c.ready_ops is not None and not c.waited:
                        c.ready_ops += 1
            put(nd)
            if record and is_compute(nd):
                events.append((nd, ("op", phase)))
            continue
        # nothing independent is left: data dependencies force the next launch or wait
        pending = [c for c in colls if c.ready_ops is not None and not c.launched]
        if pending:
            launch(pending[0])
            continue
        pending = [c for c in colls if c.launched and not c.waited]
        if not pending:
            raise SkipOverlap(f"the {phase} graph could not be ordered (a cycle?)")
        wait(pending[0])
    placed.append(output)

    _rebuild(gm, placed, events if record else [])
    # the nanobatch of each collective launch, in the order the step launches them
    gm.gearshift_launch_nanobatches = [ev[3] for _nd, ev in events if ev[0] == "launch"]
    applied = [{"partition": c.partition, "collective": c.collective, "phase": phase,
                "nanobatch": c.nanobatch, "overlap": c.choice.key(), "launch_op": c.launch_op,
                "completion_op": c.completion_op, "cta_count": c.cta_count}
               for c in sorted(colls, key=lambda c: (c.collective, c.nanobatch))]
    return applied, per_nanobatch


def _route(node: fx.Node, ctas: int, groups) -> int | None:
    schema = node.target._schema
    names = [a.name for a in schema.arguments]
    if "group_name" not in names:
        return None
    i = names.index("group_name")
    args = list(node.args)
    if i < len(args):
        args[i], applied = groups.route(args[i], ctas)
        node.args = tuple(args)
    else:
        kwargs = dict(node.kwargs)
        kwargs["group_name"], applied = groups.route(kwargs["group_name"], ctas)
        node.kwargs = kwargs
    return applied


def _rebuild(gm: fx.GraphModule, order: list[fx.Node], events: list[tuple]) -> None:
    """Write the nodes into ``gm`` in ``order``, with recorder calls after ``events``' nodes."""
    after: dict[fx.Node, list[tuple]] = {}
    for nd, ev in events:
        after.setdefault(nd, []).append(ev)
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for nd in order:
        env[nd] = g.node_copy(nd, lambda a: env[a])
        for ev in after.get(nd, []):
            g.call_function(_record, ev)
    gm.graph = g
    gm.recompile()


# --------------------------------------------------------------------------------------------
# The dynamo backend that applies it all


def _runner_trace(runner):
    return getattr(runner, "trace", None) or getattr(getattr(runner, "enforcer", None),
                                                     "trace", None)


def target(runner) -> tuple:
    """(schedule, trace, nanobatches) the pass applies to the runner's step now.

    The in-loop path (integrations/online.py) changes it step by step: each profiling round's
    probe schedule, then the planned one; before a schedule exists (record, plan) its steps run
    split into the run's nanobatches with every collective serial. Otherwise the runner's
    schedule and trace.
    """
    online = getattr(runner, "online", None)
    if online is not None:
        return online.overlap_target()
    schedule = getattr(runner, "schedule", None)
    return schedule, _runner_trace(runner), nanobatches_of(schedule)


def wanted(runner) -> bool:
    """Whether the runner's step needs the pass (nanobatches, windows or SM counts)."""
    schedule, _trace, n = target(runner)
    return n > 1 or wants_overlap(schedule)


class _Placements:
    """The AOT forward and backward graphs of one captured step, placed per collective plan.

    AOTAutograd runs once per capture; a new plan (the next profiling round's probe, the
    planned schedule) only re-orders copies of the two graphs (``place_collectives``), cached by
    the plan's key. The forward picks the plan at the start of each step and places both graphs
    then, so the backward of that step runs the same plan and never fails on a placement.
    """

    MAX_CACHED = 64

    def __init__(self, runner, state: OverlapState, groups, record: bool):
        self.runner, self.state, self.groups, self.record = runner, state, groups, record
        self.graphs: dict[str, fx.GraphModule] = {}
        self.forward_per_nb: int | None = None
        self.cache: dict[tuple, tuple] = {}
        self.current: tuple | None = None          # (forward fn, backward fn) of this step
        self.launch_nanobatches: dict[tuple, list[int]] = {}   # per plan key, launch order
        self._plan_memo: tuple | None = None       # (schedule, trace, plan)

    def plan(self) -> CollectivePlan:
        schedule, trace, _n = target(self.runner)
        if schedule is None:
            return CollectivePlan.serial()
        if trace is None:
            raise SkipOverlap("no trace for the schedule yet")
        memo = self._plan_memo
        if memo is not None and memo[0] is schedule and memo[1] is trace:
            return memo[2]
        plan = collective_plan(schedule, trace)
        self._plan_memo = (schedule, trace, plan)
        return plan

    @staticmethod
    def _copy(gm: fx.GraphModule) -> fx.GraphModule:
        g = fx.Graph()
        out = g.graph_copy(gm.graph, {})
        g.output(out)
        return fx.GraphModule(gm, g)

    def place(self, plan: CollectivePlan) -> tuple:
        key = plan.key()
        hit = self.cache.get(key)
        if hit is None:
            fw = self._copy(self.graphs["forward"])
            applied, per_nb = place_collectives(fw, "forward", plan, 0, self.groups, self.record)
            if self.forward_per_nb is None:
                self.forward_per_nb = per_nb
            bw_fn, bw_done = None, []
            if "backward" in self.graphs:
                bw = self._copy(self.graphs["backward"])
                bw_done, bw_per_nb = place_collectives(bw, "backward", plan, per_nb,
                                                       self.groups, self.record)
                if plan.default is None and per_nb + bw_per_nb != plan.per_nanobatch:
                    raise SkipOverlap(f"the traced step has {plan.per_nanobatch} collectives "
                                      f"per nanobatch, the captured step {per_nb + bw_per_nb}; "
                                      "re-plan for this model")
                bw_fn = bw.forward
            applied = sorted(applied + bw_done, key=lambda a: (a["collective"], a["nanobatch"]))
            if len(self.cache) >= self.MAX_CACHED:
                self.cache.clear()
            hit = self.cache[key] = (fw.forward, bw_fn, applied)
            self.launch_nanobatches[key] = (
                fw.gearshift_launch_nanobatches +
                (bw.gearshift_launch_nanobatches if bw_fn is not None else []))
        return hit

    def forward(self, *args):
        plan = self.plan()
        fw, bw, applied = self.place(plan)
        self.current = (fw, bw)
        st = self.state
        st.applied, st.skipped_reason = True, None
        st.partitions = applied if plan.default is None else []
        st.schedule_applied = self._plan_memo[0] if plan.default is None else None
        st.comm_sms_skipped_reason = getattr(self.groups, "skipped_reason", None)
        return fw(*args)

    def backward(self, *args):
        return self.current[1](*args)

    def serial_launch_nanobatches(self) -> list[int] | None:
        """Per collective launch of a step with every collective serial, in launch order, its
        nanobatch (what tags a recorded trace's collectives: the launch hook sees names only)."""
        return self.launch_nanobatches.get(CollectivePlan.serial().key())


def overlap_backend(runner, state: OverlapState, groups=None):
    """A dynamo backend that runs the step with ``runner``'s schedule's overlap applied.

    Whatever it cannot transform runs untransformed (``state`` says why).
    """
    from functorch.compile import make_boxed_func  # noqa: PLC0415

    def untouched(gm):
        return gm.forward

    def backend(gm: fx.GraphModule, example_inputs):
        state.graphs_seen += 1
        if state.graphs_seen > 1:
            state.skip("the step compiled into more than one graph (a graph break or a "
                       "recompile); remove graph breaks (torch._dynamo.explain) to get overlap")
            return untouched(gm)
        try:
            return _transform(gm, example_inputs)
        except SkipOverlap as exc:
            state.skip(str(exc))
        except Exception as exc:  # noqa: BLE001  (the user's step must still run)
            log.debug("overlap pass failed", exc_info=True)
            state.skip(f"the overlap pass failed: {type(exc).__name__}: {exc}")
        return untouched(gm)

    def _transform(gm, example_inputs):
        from torch._dynamo.backends.common import aot_autograd  # noqa: PLC0415

        _schedule, _trace, n = target(runner)
        placements = _Placements(runner, state, groups, os.environ.get(RECORD_ENV) == "1")
        first = placements.plan()             # checks the schedule against the trace now
        split = gm
        if n > 1:
            split = split_nanobatches(gm, n, example_inputs)
            check_split(gm, split, example_inputs)

        def fw_compiler(g, _ex):
            placements.graphs["forward"] = g
            return make_boxed_func(placements.forward)

        def bw_compiler(g, _ex):
            placements.graphs["backward"] = g
            return make_boxed_func(placements.backward)

        with torch._functorch.config.patch(force_non_lazy_backward_lowering=True):
            compiled = aot_autograd(fw_compiler=fw_compiler, bw_compiler=bw_compiler)(
                split, example_inputs)
        if "forward" not in placements.graphs:
            raise SkipOverlap("AOTAutograd produced no forward graph")
        placements.place(first)               # a plan the captured step cannot take fails here
        state.applied, state.skipped_reason, state.nanobatches = True, None, n
        state.comm_sms_skipped_reason = getattr(groups, "skipped_reason", None)
        runner._overlap_placements = placements
        return compiled

    return backend


# --------------------------------------------------------------------------------------------
# Hooks for the two wrappers (integrations/wrap.py, integrations/dynamo.py)


def _fell_back(runner) -> bool:
    """The runner's fallback (OWNERS.md: every later step untouched) covers the overlap too."""
    return bool(getattr(runner, "fallback_reason", None))


def module_call(runner, module: torch.nn.Module):
    """What ``gearshift.compile``'s wrapper calls for a training step: ``module`` itself, or,
    when the schedule asks for overlap, ``module`` compiled with the overlap applied."""
    state = state_of(runner)
    if state.skipped_reason is not None or _fell_back(runner) or not wanted(runner):
        return module
    call = getattr(runner, "_overlap_call", None)
    if call is None:
        from ..runtime.comm_groups import CommGroups  # noqa: PLC0415

        runner._overlap_groups = CommGroups()
        compiled = torch.compile(module, backend=overlap_backend(runner, state,
                                                                 runner._overlap_groups))
        first = [True]

        def call(*args, **kwargs):
            if not first[0]:
                return compiled(*args, **kwargs)
            # a dynamic batch dimension keeps the graph's shapes valid for a nanobatch
            first[0] = False
            for t in list(args) + list(kwargs.values()):
                if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] > 1:
                    torch._dynamo.maybe_mark_dynamic(t, 0)
            try:
                return compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  (dynamo itself failed: run the step eagerly)
                log.debug("torch.compile of the step failed", exc_info=True)
                state.skip(f"torch.compile could not capture the step: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}")
                return module(*args, **kwargs)

        runner._overlap_call = call
    return call


def compiled_step(runner, gm: fx.GraphModule, example_inputs, default):
    """The callable the ``gearshift`` dynamo backend runs for a training graph: ``default``
    (inductor's), or, once the runner's schedule asks for overlap, the transformed step."""
    state = state_of(runner)
    box: dict = {}
    # dynamo drops the graph's example values after compiling; the split needs them later
    saved = {nd: dict(nd.meta) for nd in gm.graph.nodes}

    def step(*args):
        if state.skipped_reason is not None or _fell_back(runner):   # e.g. a later graph break
            return default(*args)
        fn = box.get("fn")
        if fn is None:
            fn = default
            if state.skipped_reason is None and wanted(runner):
                from ..runtime.comm_groups import CommGroups  # noqa: PLC0415

                for nd, meta in saved.items():
                    nd.meta.update({k: v for k, v in meta.items() if k not in nd.meta})
                runner._overlap_groups = CommGroups()
                transformed = overlap_backend(runner, state, runner._overlap_groups)(
                    gm, example_inputs)
                fn = transformed if state.applied else default
            box["fn"] = fn
        return fn(*args)

    return step


def graph_break(runner) -> None:
    """The dynamo backend saw a second training graph: overlap cannot cover the step."""
    state_of(runner).skip("the step compiled into more than one graph (a graph break or a "
                          "recompile); remove graph breaks (torch._dynamo.explain) to get overlap")
