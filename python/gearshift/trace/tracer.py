"""The op-level tracer: one training step under a TorchDispatchMode, shapes only, on meta.

Parameters and everything computed from them live on meta (no memory, any model size). Tensors
that do not depend on the weights (token ids, padding masks, positions, the small tensors that
factory calls make) stay real on the CPU, so the data-dependent checks real models make on them
(``(mask == 1).all()``, ``.item()``, ``.tolist()``) get true answers; an op that mixes the two
runs on meta. Where a value computed from the weights is needed (``.item()`` of an activation),
``device="auto"`` traces again on the CPU with real tensors of the same dtype, if the model is
small enough.

Every aten op the step dispatches becomes the records of the device kernels it would launch
(kernels.py says how many). Phase comes from which part of the step is running; the module path
of a forward op from a stack kept by global module hooks, and of a backward op from the autograd
node the engine is executing, which a forward hook tagged with the module that created it.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.flop_counter import flop_registry

from ..errors import TraceError
from ..model import KernelRecord, KernelTrace
from .kernels import (
    COMM_NAMESPACES,
    COMM_OPS,
    CONV_BACKWARD_PARTS,
    MULTI_KERNEL_OPS,
    NO_KERNEL_OPS,
    foreach_launches,
)

_NODE_KEY = "gearshift_module"
FUSED_NAMESPACE = "gearshift_fused"   # trace/fused.py: one kernel per call
LOSS_MODULE = "loss"
_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
           torch.float64: "f64", torch.int64: "i64", torch.int32: "i32", torch.bool: "b8",
           torch.uint8: "u8", torch.int8: "i8"}


def _op_name(func) -> str:
    ns, _, rest = func.name().partition("::")
    return f"{ns}::{rest.split('.')[0]}"


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) or "1"


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


# a tensor a factory call makes (or an input) stays real below this many bytes; larger ones go
# to meta, so a real model's big buffers never take memory
REAL_MAX_BYTES = 64 << 20
# device="auto" re-traces on the CPU (a real step on a copy) only for models up to this size
CPU_RETRACE_MAX_BYTES = 2 << 30
_META = torch.device("meta")
_CPU = torch.device("cpu")


class _NeedsData(RuntimeError):
    """A value computed from the weights was asked for (.item() and the like on meta)."""


def _small(t) -> bool:
    return isinstance(t, torch.Tensor) and _nbytes(t) <= REAL_MAX_BYTES


def _to(tree, dev):
    return tree_map(lambda x: x.to(dev) if isinstance(x, torch.Tensor) and x.device != dev
                    else (dev if isinstance(x, torch.device) and x.type in ("cpu", "meta")
                          else x), tree)


def _call_placed(func, args, kwargs):
    """Run ``func`` where its inputs are: real on the CPU when none is on meta, else on meta.

    A device argument names the traced device (meta for the model, cpu for a dynamo graph
    captured from a CPU model); it follows the inputs. Factory calls (no tensor inputs) run on
    meta first and again for real when the result is small.
    """
    ts = _tensors((args, kwargs))
    if any(t.is_meta for t in ts):
        return func(*_to(args, _META), **_to(kwargs, _META))
    if ts:
        return func(*_to(args, _CPU), **_to(kwargs, _CPU))
    out = func(*_to(args, _META), **_to(kwargs, _META))
    outs = _tensors(out)
    if outs and all(_small(t) for t in outs):
        return func(*_to(args, _CPU), **_to(kwargs, _CPU))
    return out


class _Recorder(TorchDispatchMode):
    """Turns dispatched ops into KernelRecords."""

    def __init__(self, stack: list[str], placed: bool = False):
        super().__init__()
        self.placed = placed
        self.records: list[KernelRecord] = []
        self.stack = stack
        self.phase = "forward"
        self.default_module = ""
        self.failed: tuple[str, str] | None = None
        self.ops_seen = 0
        # storage -> (the storage, ids of the kernels whose results it holds): the data flow
        # the kernels' deps come from. Holding the storage keeps its address from being reused.
        self.writer: dict[int, tuple[object, tuple[int, ...]]] = {}

    def _reads(self, tensors) -> tuple[int, ...]:
        ids: set[int] = set()
        for t in tensors:
            key = _storage_key(t)
            if key is not None and key in self.writer:
                ids.update(self.writer[key][1])
        return tuple(sorted(ids))

    def _wrote(self, tensors, kernel_ids: tuple[int, ...]) -> None:
        for t in tensors:
            key = _storage_key(t)
            if key is not None:
                self.writer[key] = (t.untyped_storage(), kernel_ids)

    def module(self) -> str:
        if self.phase == "forward":
            return self.stack[-1] if self.stack else self.default_module
        if self.phase == "backward":
            if self.stack:  # activation checkpointing re-running a module's forward
                return self.stack[-1]
            node = torch._C._current_autograd_node()
            if node is None:  # the engine seeding the loss gradient
                return LOSS_MODULE
            return node.metadata.get(_NODE_KEY, "")
        return ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            out = _call_placed(func, args, kwargs) if self.placed else func(*args, **kwargs)
        except Exception as exc:
            if self.failed is None:
                self.failed = (_op_name(func), self.module())
            if self.placed and "meta" in str(exc):
                raise _NeedsData(str(exc)) from exc
            raise
        self.ops_seen += 1
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        op = _op_name(func)
        ns = op.split("::")[0]
        if func.is_view or op in NO_KERNEL_OPS:
            # no kernel: what it returns holds what its inputs held (a view, a wait on a
            # collective's result), so it keeps their writer
            deps = self._reads(_tensors((args, kwargs)))
            if deps:
                self._wrote(_tensors(out), deps)
            return
        comm_op = COMM_OPS.get(op.split("::")[1]) if ns in COMM_NAMESPACES else None
        if ns not in ("aten", FUSED_NAMESPACE) and comm_op is None:
            return  # profiler markers and other non-kernel ops
        ins, outs = _tensors((args, kwargs)), _tensors(out)
        if not ins and not outs:
            return
        read = float(sum(_nbytes(t) for t in ins))
        written = float(sum(_nbytes(t) for t in outs))
        if not outs:  # in-place foreach ops return nothing: what they mutate is written
            written = float(sum(_nbytes(t) for t in _mutated(func, args, kwargs)))
        flops = None
        counter = flop_registry.get(func._overloadpacket)
        if counter is not None:
            flops = float(counter(*args, **kwargs, out_val=out))
        module = self.module()
        common = dict(phase=self.phase, module=module, op=op)
        deps = self._reads(ins)
        first = len(self.records)
        written_tensors = outs + _mutated(func, args, kwargs)
        try:
            self._emit(op, comm_op, func, args, ins, outs, read, written, flops, common, deps)
        finally:
            if len(self.records) > first:
                self._wrote(written_tensors, (len(self.records) - 1,))

    def _emit(self, op, comm_op, func, args, ins, outs, read, written, flops, common, deps):
        if comm_op is not None:
            payload = (outs[0] if comm_op == "all_gather" and outs else ins[0])
            self.records.append(KernelRecord(
                name=f"{op}({_shape(payload)}){_DTYPES.get(payload.dtype, '')}", kind="comm",
                comm_op=comm_op, comm_bytes=float(_nbytes(payload)), bytes_read=read,
                bytes_written=written, deps=deps, **common))
            return
        base = f"{op}({','.join(_shape(t) for t in ins[:3])}){_dtype_tag(ins, outs)}"
        if op.startswith("aten::_foreach_"):
            lists = [a for a in args if isinstance(a, (list, tuple)) and a
                     and isinstance(a[0], torch.Tensor)]
            numels = [t.numel() for t in lists[0]] if lists else [t.numel() for t in ins]
            n = max(1, foreach_launches(numels, len(lists)))
            base = f"{op}[{len(numels)} tensors,{sum(numels)}]{_dtype_tag(ins, outs)}"
            parts = tuple((f"chunk{i}", 1.0 / n) for i in range(n))
        elif op == "aten::convolution_backward":
            mask = args[-1] if isinstance(args[-1], (list, tuple)) else (True, True, False)
            parts = tuple(p for p, m in zip(CONV_BACKWARD_PARTS, mask) if m) or \
                CONV_BACKWARD_PARTS[:1]
            total = sum(s for _, s in parts) or 1.0
            parts = tuple((p, s / total if total else 1.0 / len(parts)) for p, s in parts)
        else:
            parts = MULTI_KERNEL_OPS.get(op)
        if not parts:
            self.records.append(KernelRecord(name=base, flops=flops, bytes_read=read,
                                             bytes_written=written, deps=deps, **common))
            return
        # the kernels of one op run in order, each on what the one before it left
        for j, (suffix, share) in enumerate(parts):
            chained = deps if j == 0 else tuple(sorted(set(deps) | {len(self.records) - 1}))
            self.records.append(KernelRecord(
                name=f"{base}/{suffix}", flops=None if flops is None else flops * share,
                bytes_read=read * share, bytes_written=written * share, deps=chained, **common))


def _storage_key(t: torch.Tensor) -> int | None:
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


def _dtype_tag(ins, outs) -> str:
    src = _DTYPES.get(ins[0].dtype, "") if ins else ""
    dst = _DTYPES.get(outs[0].dtype, "") if outs else src
    return src if src == dst else f"{src}->{dst}"


def _mutated(func, args, kwargs) -> list[torch.Tensor]:
    out = []
    for i, a in enumerate(func._schema.arguments):
        if a.alias_info is not None and a.alias_info.is_write:
            v = args[i] if i < len(args) else kwargs.get(a.name)
            out.extend(_tensors(v))
    return out


class _Tagger(TorchFunctionMode):
    """Above autograd: tags each new autograd node with the module that created it, and runs
    F.scaled_dot_product_attention as the fused kernel a CUDA device picks.

    Tagging at creation is exact where tagging at module exit is not (a walk back from a
    submodule's output would claim its parent's nodes). On meta (and CPU) PyTorch decomposes
    attention into matmuls and a softmax; a GPU launches flash attention (fp16/bf16) or
    memory-efficient attention (fp32), so that is what is traced when ``fused_attention``.
    """

    def __init__(self, rec: "_Recorder", fused_attention: bool):
        super().__init__()
        self.rec = rec
        self.fused_attention = fused_attention

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = None
        if func is F.scaled_dot_product_attention and self.fused_attention:
            out = _fused_sdpa(*args, **kwargs)
        if out is None:
            out = func(*args, **kwargs)
        if self.rec.phase == "forward" and isinstance(out, (torch.Tensor, tuple, list)):
            _tag_nodes(out, self.rec.module())
        return out


def _fused_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
    if q.device.type != "meta" or attn_mask is not None or q.dim() != 4 or q.shape[1] != k.shape[1] or \
            q.shape[-1] > 256 or q.shape[-1] % 8:
        return None
    if q.dtype in (torch.float16, torch.bfloat16):
        return torch.ops.aten._scaled_dot_product_flash_attention(
            q, k, v, dropout_p, is_causal, scale=scale)[0]
    if q.dtype == torch.float32:
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, None, q.requires_grad, dropout_p, is_causal, scale=scale)[0]
    return None


def _tag_nodes(output, path: str) -> None:
    """Tag the not yet tagged autograd nodes behind ``output`` (those one call created)."""
    todo = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
    while todo:
        node = todo.pop()
        md = node.metadata
        if _NODE_KEY in md:
            continue
        md[_NODE_KEY] = path
        todo.extend(n for n, _ in node.next_functions
                    if n is not None and type(n).__name__ != "AccumulateGrad")


class _ModuleHooks:
    """Global forward hooks restricted to the traced model's modules."""

    def __init__(self, root: torch.nn.Module, stack: list[str]):
        self.names = {id(m): name for name, m in root.named_modules()}
        self.stack = stack
        self.handles = []

    def __enter__(self):
        from torch.nn.modules import module as mm  # noqa: PLC0415

        def pre(mod, _inputs):
            name = self.names.get(id(mod))
            if name is not None:
                self.stack.append(name)

        def post(mod, _inputs, output):
            name = self.names.get(id(mod))
            if name is not None:
                if self.stack and self.stack[-1] == name:
                    self.stack.pop()

        self.handles = [mm.register_module_forward_pre_hook(pre),
                        mm.register_module_forward_hook(post, always_call=True)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    """The module with its parameters on meta, without copying their data; small buffers
    (positions, rotary frequencies, token-type ids) keep their values, on the CPU."""
    memo = _attached_memo(module)
    for p in module.parameters():
        # torch.empty(shape): a DTensor's (FSDP2's) shape is the full, unsharded one
        memo[id(p)] = torch.nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device=_META),
                                         requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = (b.detach().to(_CPU, copy=True) if not b.is_meta and _small(b)
                       else torch.empty(b.shape, dtype=b.dtype, device=_META))
    if _is_sharded(module):
        return _plain_copy(module, memo)
    return copy.deepcopy(module, memo)


def _attached_memo(module: torch.nn.Module) -> dict:
    """A deepcopy memo that leaves out what gearshift attached to the model (the runner of
    ``torch.compile(model, backend="gearshift")``): the copy is the plain model."""
    return {id(r): None for m in module.modules()
            if (r := m.__dict__.get("gearshift")) is not None}


def _is_sharded(module: torch.nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule  # noqa: PLC0415
    except ImportError:
        return False
    return any(isinstance(m, FSDPModule) for m in module.modules())


def _plain_class(cls: type) -> type:
    """The model's own class under gearshift's and FSDP2's subclasses of it."""
    from torch.distributed.fsdp import FSDPModule  # noqa: PLC0415

    cls = getattr(cls, "_gearshift_base", cls)
    while issubclass(cls, FSDPModule):
        cls = next(b for b in cls.__bases__ if b is not FSDPModule)
    return cls


def _plain_copy(module: torch.nn.Module, memo: dict) -> torch.nn.Module:
    """A copy of an FSDP2-sharded model as the plain model it shards (FSDP2 refuses deepcopy,
    and its hooks and process groups are not part of the traced step; their collectives are
    added by trace.data_parallel): same classes, parameters from ``memo``, no hooks. Other
    attributes (configs, flags) are shared with the original, not copied."""
    new = object.__new__(_plain_class(type(module)))
    d = dict(module.__dict__)
    for k, v in d.items():
        if k.endswith("_hooks") or k.endswith("_hooks_with_kwargs") or \
                k.endswith("_hooks_always_called"):
            d[k] = type(v)()
    d["_parameters"] = {n: (memo.get(id(p), p) if p is not None else None)
                        for n, p in module._parameters.items()}
    d["_buffers"] = {n: (memo.get(id(b), b) if b is not None else None)
                     for n, b in module._buffers.items()}
    d["_modules"] = {n: (_plain_copy(m, memo) if m is not None else None)
                     for n, m in module._modules.items()}
    new.__dict__.update(d)
    return new


def _default_loss(output):
    ts = _tensors(output)
    if not ts:
        raise TraceError("the module's forward returned no tensor, so there is nothing to "
                         "differentiate", "pass loss_fn=... that turns the output into a scalar")
    t = ts[0]
    return t if t.dim() == 0 else t.float().sum()


def _default_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-4, foreach=True)


def trace_step(module, example_inputs, loss_fn=None, optimizer_factory=None, device="auto", *,
               model_name: str = "", fused_attention: bool = True,
               meta: dict | None = None, data_parallel: dict | None = None) -> KernelTrace:
    """Trace one training step (forward, loss, backward, optimizer step) of ``module``.

    ``example_inputs``: a tensor, a tuple of positional inputs or a dict of keyword inputs.
    ``loss_fn(output) -> scalar``: defaults to the output itself when scalar, else its sum.
    ``optimizer_factory(params) -> optimizer``: defaults to AdamW(foreach=True), what a CUDA
    run uses; pass ``False`` to trace no optimizer step. A first, untraced optimizer step creates
    the optimizer state, so the trace is of a steady-state iteration.
    ``device``: "meta" traces the weights and all that depends on them as shapes only (a model
    of any size traces without memory) while inputs, masks and small factory results stay real;
    "cpu" runs a real step on a full copy; "auto" (default) is meta, then cpu when the step needs
    a value computed from the weights and the model is at most 2 GiB. The module passed in is
    never modified. ``data_parallel`` adds the data-parallel collectives the step launches:
    ``{"kind": "ddp", "bucket_bytes", "first_bucket_bytes", "world_size"}`` (DDP's bucketed
    gradient all-reduce, each launched when its bucket's last gradient is accumulated) or
    ``{"kind": "fsdp", "world_size"}`` (FSDP2: per sharded unit an all-gather of its
    parameters before its forward and its backward, a reduce-scatter of its gradients after).
    A DistributedDataParallel passed in is traced as the model inside it with ``ddp``.
    """
    if not isinstance(module, torch.nn.Module):
        raise TraceError(f"trace_step needs a torch.nn.Module, got {type(module).__name__}",
                         "pass the model (an nn.Module) as the first argument")
    if device not in ("auto", "meta", "cpu"):
        raise TraceError(f"cannot trace on device {device!r}",
                         "use device='auto' (default), 'meta' or 'cpu'")
    from .data_parallel import ddp_spec  # noqa: PLC0415

    data_parallel = data_parallel or ddp_spec(module)
    module = unwrap_data_parallel(module)
    if data_parallel:
        meta = dict(meta or {}, data_parallel=data_parallel["kind"],
                    world_size=data_parallel["world_size"])
    if device == "cpu":
        return _trace(module, example_inputs, loss_fn, optimizer_factory, "cpu", model_name,
                      fused_attention, meta, data_parallel)
    try:
        return _trace(module, example_inputs, loss_fn, optimizer_factory, "meta", model_name,
                      fused_attention, meta, data_parallel)
    except TraceError as exc:
        needs_data = isinstance(exc.__cause__, _NeedsData)
        size = sum(_nbytes(p) for p in module.parameters())
        if not (needs_data and device == "auto" and size <= CPU_RETRACE_MAX_BYTES):
            raise
        info = dict(meta or {}, retraced_on_cpu=exc.problem)
        return _trace(module, example_inputs, loss_fn, optimizer_factory, "cpu", model_name,
                      fused_attention, info, data_parallel)


def unwrap_data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel/DataParallel (their wrappers hold process
    groups and reducers that cannot be copied; their collectives are added to the trace)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel  # noqa: PLC0415

    while isinstance(module, (DistributedDataParallel, DataParallel)):
        module = module.module
    return module


def _place_input(x, dev: torch.device):
    if not isinstance(x, torch.Tensor):
        return x
    if dev.type == "meta":   # inputs stay real (masks and ids are read); big ones go to meta
        return x.detach().to(_CPU) if _small(x) and not x.is_meta else x.to(_META)
    return x.to(dev)


def _trace(module, example_inputs, loss_fn, optimizer_factory, device, model_name,
           fused_attention, meta, data_parallel=None) -> KernelTrace:
    t0 = time.perf_counter()
    dev = torch.device(device)
    if dev.type == "meta":
        if any(not p.is_meta for p in module.parameters()) or any(
                not b.is_meta and not _small(b) for b in module.buffers()):
            module = _meta_copy(module)
    else:  # a real step changes weights: run it on a copy
        module = copy.deepcopy(module, _attached_memo(module)).to(dev)
    inputs = tree_map(lambda x: _place_input(x, dev), example_inputs)
    if isinstance(inputs, dict):
        args, kwargs = (), inputs
    elif isinstance(inputs, (tuple, list)):
        args, kwargs = tuple(inputs), {}
    else:
        args, kwargs = (inputs,), {}
    module.train()
    loss_fn = loss_fn or _default_loss
    params = [p for p in module.parameters() if p.requires_grad]
    opt = None
    if optimizer_factory is not False and params:
        opt = (optimizer_factory or _default_optimizer)(params)
        for p in params:  # one untraced step creates the optimizer state
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)

    stack: list[str] = []
    rec = _Recorder(stack, placed=dev.type == "meta")
    phase = "forward"
    try:
        from .data_parallel import collective_hooks  # noqa: PLC0415

        with _ModuleHooks(module, stack), rec, _Tagger(rec, fused_attention), \
                collective_hooks(module, rec, data_parallel):
            output = module(*args, **kwargs)
            rec.default_module = LOSS_MODULE
            loss = loss_fn(output)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TraceError("loss_fn must return a scalar tensor, got "
                                 f"{type(loss).__name__}"
                                 f"{'' if not isinstance(loss, torch.Tensor) else list(loss.shape)}",
                                 "reduce the loss to one value (e.g. .mean())")
            phase = rec.phase = "backward"
            if loss.requires_grad:
                loss.backward()
            if opt is not None:
                phase = rec.phase = "optimizer"
                opt.step()
                opt.zero_grad(set_to_none=True)
    except TraceError:
        raise
    except Exception as exc:
        op, where = rec.failed or ("", stack[-1] if stack else "")
        what = f"op {op} " if op else ""
        mod = f"module '{where}'" if where else f"the top-level module ({type(module).__name__})"
        text = str(exc).splitlines()[0] if str(exc) else ""
        fix = ("on meta only shapes exist for values computed from the weights: data-dependent "
               "code on them (.item(), .tolist(), nonzero, Python branches on values) cannot "
               "run there; trace with trace_device='cpu' (a real step on a CPU copy), or make "
               "the check shape-only") if isinstance(exc, _NeedsData) or "meta" in str(exc) else (
               "make one training step of the module run outside gearshift first: the error "
               "comes from the module (or loss_fn / optimizer_factory) itself")
        raise TraceError(f"the training step failed under tracing in the {phase} phase at "
                         f"{what}in {mod}: {type(exc).__name__}: {text}", fix) from exc
    if not rec.records:
        raise TraceError("the training step launched no device kernels",
                         "check that the module does work in forward (and has parameters "
                         "that require grad for a backward pass)")
    n_params = sum(p.numel() for p in module.parameters())
    info = {"params": n_params, "ops_dispatched": rec.ops_seen,
            "optimizer": type(opt).__name__ if opt is not None else None,
            "fused_attention": fused_attention, "torch": torch.__version__,
            "trace_device": dev.type, "trace_wall_s": round(time.perf_counter() - t0, 3)}
    info.update(meta or {})
    return KernelTrace(rec.records, model=model_name or type(module).__name__,
                       source="op-tracer", device=str(dev), meta=info)
