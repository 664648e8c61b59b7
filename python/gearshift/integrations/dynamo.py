"""The ``torch.compile`` backend "gearshift": inductor generates the code, gearshift runs the
compiled training step under a schedule.

``torch.compile(model, backend="gearshift")`` finds it through the ``torch_dynamo_backends``
entry point (or after ``gearshift.integrations.dynamo.register()``); ``backend(config)``
gives one with a non-default GearshiftConfig.
"""

from __future__ import annotations

import warnings

import torch

from . import overlap_pass
from .config import GearshiftConfig
from .runner import Runner

_active: list[Runner] = []


class _Lifted(torch.nn.Module):
    """Dynamo lifts parameters into graph inputs; this puts them back as parameters so the
    tracer sees a module, its inputs, and the optimizer step over its parameters."""

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


def backend(config: GearshiftConfig | None = None, *, loss_fn=None, optimizer_factory=None):
    """A dynamo backend with ``config``: ``torch.compile(model, backend=backend(cfg))``."""
    config = config or GearshiftConfig()

    def gearshift_backend(gm: torch.fx.GraphModule, example_inputs):
        from torch._inductor.compile_fx import compile_fx  # noqa: PLC0415

        compiled = compile_fx(gm, example_inputs)
        if not torch.is_grad_enabled():
            return compiled           # an inference graph (no_grad/eval): not a training step
        if _active:
            # the first training graph's schedule covers the step as traced from that graph;
            # further graphs (graph breaks, recompiles) run compiled but unscheduled
            warnings.warn("gearshift: the model compiled into more than one training graph "
                          "(graph breaks or recompiles); only the first runs under a schedule. "
                          "Remove the graph breaks (torch._dynamo.explain), or use "
                          "gearshift.compile(model).", stacklevel=2)
            overlap_pass.graph_break(_active[0])
            return compiled
        lifted = _Lifted(gm, example_inputs)
        runner = Runner(lifted, config, loss_fn or _sum_outputs, optimizer_factory,
                        model_name="compiled graph")
        _active.append(runner)

        # the schedule's overlap half: the transformed step once the schedule asks for it
        step = overlap_pass.compiled_step(runner, gm, example_inputs, compiled)

        def run(*args):
            if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad
                                               for a in args):
                data = lifted.data_inputs(args)
                runner.on_step(data if len(data) != 1 else data[0])
                return step(*args)
            return compiled(*args)

        run.gearshift = runner
        return run

    return gearshift_backend


def gearshift_backend(gm, example_inputs):
    """The entry-point backend: default GearshiftConfig (objective iso-time, device auto)."""
    return backend()(gm, example_inputs)


def runner() -> Runner | None:
    """The Runner of the graph compiled last in this process (its schedule, enforcer, device)."""
    return _active[-1] if _active else None


def reset() -> None:
    for r in _active:
        r.close()
    _active.clear()


def register() -> None:
    """Register "gearshift" with dynamo (the entry point does this for installed packages)."""
    from torch._dynamo.backends.registry import _BACKENDS, register_backend  # noqa: PLC0415

    if "gearshift" not in _BACKENDS:
        register_backend(name="gearshift")(gearshift_backend)
