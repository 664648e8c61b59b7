"""The ``torch.compile`` backend "gearshift": inductor generates the code, gearshift runs the
compiled training step under a schedule.

``torch.compile(model, backend="gearshift", mode=..., options=...)`` finds it through the
``torch_dynamo_backends`` entry point (or after ``gearshift.integrations.dynamo.register()``);
``mode`` and ``options`` go to inductor, except options named ``gearshift.<field>``, which set
GearshiftConfig fields (``options={"gearshift.objective": "max-slowdown=1.05"}``);
``backend(config)`` gives one with a non-default GearshiftConfig.

One Runner per compiled model, ``compiled_model.gearshift``: it traces the model's own step
(every graph of it, graph breaks included) with the inputs of the first call, and each call
of the model's first graph starts one iteration. Whatever fails in gearshift, the compiled
step runs as inductor alone would run it (see Runner.fallback).
"""

from __future__ import annotations

import torch

from . import overlap_pass
from .config import GearshiftConfig
from .runner import Runner

_active: list[Runner] = []
_RESUME = "torch_dynamo_resume_in_"


class _Lifted(torch.nn.Module):
    """Dynamo lifts parameters into graph inputs; this puts them back as parameters so the
    tracer sees a module, its inputs, and the optimizer step over its parameters. Used only
    where the model being compiled cannot be found (a compiled function, not a module)."""

    def __init__(self, gm: torch.fx.GraphModule, example_inputs):
        super().__init__()
        self.gm = gm
        self.slots = [i for i, x in enumerate(example_inputs) if isinstance(x, torch.nn.Parameter)]
        self.params = torch.nn.ParameterList([example_inputs[i] for i in self.slots])
        self.arity = len(example_inputs)

    def forward(self, *rest):
        it_p, it_r = iter(self.params), iter(rest)
        slots = set(self.slots)
        return self.gm(*[next(it_p) if i in slots else next(it_r) for i in range(self.arity)])

    def data_inputs(self, args):
        slots = set(self.slots)
        return tuple(a for i, a in enumerate(args) if i not in slots)


def _sum_outputs(out):
    from torch.utils._pytree import tree_leaves  # noqa: PLC0415

    ts = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return sum(t.sum() for t in ts)


def _compiled_module_call():
    """(OptimizedModule, args, kwargs) of the ``compiled_model(...)`` call being compiled, found
    on the Python stack (dynamo compiles inside that call), or None (a compiled function)."""
    import sys  # noqa: PLC0415

    from torch._dynamo.eval_frame import OptimizedModule  # noqa: PLC0415

    f = sys._getframe(1)
    while f is not None:
        if f.f_code is OptimizedModule.__call__.__code__:
            loc = f.f_locals
            return loc.get("self"), tuple(loc.get("args", ())), dict(loc.get("kwargs", {}))
        f = f.f_back
    return None


def _split_options(options: dict | None, config: GearshiftConfig):
    inductor, ours = {}, {}
    for k, v in (options or {}).items():
        (ours if k.startswith("gearshift.") else inductor)[k.removeprefix("gearshift.")] = v
    return inductor, (config.replace(**ours) if ours else config)


def backend(config: GearshiftConfig | None = None, *, loss_fn=None, optimizer_factory=None):
    """A dynamo backend with ``config``: ``torch.compile(model, backend=backend(cfg))``."""
    base_config = config or GearshiftConfig()

    def gearshift_backend(gm: torch.fx.GraphModule, example_inputs, mode: str | None = None,
                          options: dict | None = None):
        from torch._inductor.compile_fx import compile_fx  # noqa: PLC0415

        inductor_opts, config = _split_options(options, base_config)
        patches = dict(torch._inductor.list_mode_options(mode)) if mode else {}
        patches.update(inductor_opts)
        compiled = compile_fx(gm, example_inputs, config_patches=patches) if patches else \
            compile_fx(gm, example_inputs)
        if not torch.is_grad_enabled():
            return compiled           # an inference graph (no_grad/eval): not a training step
        found = _compiled_module_call()
        if found is None or found[0] is None:
            return _graph_runner(gm, example_inputs, compiled, config, loss_fn,
                                 optimizer_factory)
        opt_mod, args, kwargs = found
        model = opt_mod._orig_mod
        from .wrap import _RUNNERS  # noqa: PLC0415

        if model in _RUNNERS and not isinstance(model.__dict__.get("gearshift"), Runner):
            return compiled     # gearshift.compile(model) already runs it under a schedule
        runner = model.__dict__.get("gearshift")
        if not isinstance(runner, Runner):
            runner = _attach(opt_mod, model, config, loss_fn, optimizer_factory, args, kwargs)
        runner._graphs = getattr(runner, "_graphs", 0) + 1
        if runner._graphs > 1:
            # clocks cover the whole step whatever its graphs; overlap needs the one graph
            overlap_pass.graph_break(runner)
            return _first_call_prepares(runner, compiled)
        # the schedule's overlap half: the transformed step once the schedule asks for it
        return _first_call_prepares(
            runner, overlap_pass.compiled_step(runner, gm, example_inputs, compiled))

    return gearshift_backend


def _attach(opt_mod, model, config, loss_fn, optimizer_factory, args, kwargs) -> Runner:
    """One Runner for the compiled model: traced now from the model's own forward with this
    call's real inputs (the whole step, whatever graphs dynamo splits it into); each later
    training call of the compiled model starts one iteration (a forward pre-hook on it)."""
    runner = Runner(model, config, loss_fn, optimizer_factory)
    object.__setattr__(model, "gearshift", runner)   # compiled_model.gearshift reads through
    _active.append(runner)
    from .wrap import _RUNNERS, _ensure_optimizer_hook  # noqa: PLC0415

    _RUNNERS[model] = runner          # optimizer steps count iterations, as in compile()
    _ensure_optimizer_hook()

    def pre(mod, _args, _kwargs):
        if mod.training and torch.is_grad_enabled():
            runner.guarded_step(None)

    runner._hook = opt_mod.register_forward_pre_hook(pre, with_kwargs=True)
    if model.training:
        # this call is the first iteration; it is traced when its first graph runs, outside
        # dynamo's compilation (whose tracing state the tracer must not run under)
        runner._first_example = (kwargs if kwargs and not args else
                                 args if len(args) != 1 or kwargs else args[0])
    return runner


def _first_call_prepares(runner, fn):
    """``fn``, which first runs the pending first iteration of ``runner`` if there is one."""
    def call(*args):
        example = runner.__dict__.pop("_first_example", None)
        if example is not None and torch.is_grad_enabled():
            runner.guarded_step(example)
        return fn(*args)

    return call


def _graph_runner(gm, example_inputs, compiled, config, loss_fn, optimizer_factory):
    lifted = _Lifted(gm, example_inputs)
    runner = Runner(lifted, config, loss_fn or _sum_outputs, optimizer_factory,
                    model_name="compiled graph")
    _active.append(runner)
    step = overlap_pass.compiled_step(runner, gm, example_inputs, compiled)

    def run(*args):
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad
                                           for a in args):
            data = lifted.data_inputs(args)
            runner.guarded_step(data if len(data) != 1 else data[0])
            if runner.fallback_reason is None:
                return step(*args)
        return compiled(*args)

    run.gearshift = runner
    return run


def gearshift_backend(gm, example_inputs, mode: str | None = None, options: dict | None = None):
    """The entry-point backend: default GearshiftConfig (objective iso-time, device auto)."""
    return backend()(gm, example_inputs, mode=mode, options=options)


def runner() -> Runner | None:
    """The Runner compiled last in this process (prefer ``compiled_model.gearshift``)."""
    return _active[-1] if _active else None


def reset() -> None:
    for r in _active:
        r.close()
        hook = getattr(r, "_hook", None)
        if hook is not None:
            hook.remove()
        model = getattr(r, "model", None)
        if isinstance(model, torch.nn.Module) and model.__dict__.get("gearshift") is r:
            del model.__dict__["gearshift"]
    _active.clear()


def register() -> None:
    """Register "gearshift" with dynamo (the entry point does this for installed packages)."""
    from torch._dynamo.backends.registry import _BACKENDS, register_backend  # noqa: PLC0415

    if "gearshift" not in _BACKENDS:
        register_backend(name="gearshift")(gearshift_backend)


__all__ = ["backend", "gearshift_backend", "register", "reset", "runner"]
