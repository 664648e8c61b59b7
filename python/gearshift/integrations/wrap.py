"""``gearshift.compile(model, config)``: a module whose training steps run under a schedule."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import overlap_pass
from .config import GearshiftConfig
from .runner import Runner

__all__ = ["GearshiftModule", "Runner", "compile"]


class GearshiftModule(torch.nn.Module):
    """Wraps a model; ``.gearshift`` is its Runner. Eval-mode and no-grad calls run untouched."""

    def __init__(self, module: torch.nn.Module, runner: Runner):
        super().__init__()
        self.module = module
        self.gearshift = runner

    def forward(self, *args, **kwargs):
        if self.training and torch.is_grad_enabled():
            inputs = kwargs if kwargs and not args else args if len(args) != 1 else args[0]
            self.gearshift.on_step(inputs)
            # the schedule's overlap half: the module compiled with the overlap pass, or itself
            return overlap_pass.module_call(self.gearshift, self.module)(*args, **kwargs)
        return self.module(*args, **kwargs)


def compile(model: torch.nn.Module, config: GearshiftConfig | None = None, *, loss_fn=None,
            optimizer_factory=None, example_inputs=None, **overrides) -> GearshiftModule:  # noqa: A001
    """Wrap ``model`` so each training step runs under a gearshift schedule.

    ``config`` (or keyword overrides such as ``objective="max-slowdown=1.05"``,
    ``device="sim"``, ``schedule_path="sched.json"``) says what to optimise and where.
    ``loss_fn``/``optimizer_factory`` describe the step for tracing (defaults: sum of the
    output, AdamW). With ``example_inputs`` the plan is made now; otherwise on the first step.
    """
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"gearshift.compile needs a torch.nn.Module, got {type(model).__name__}",
                          "pass the model itself")
    config = (config or GearshiftConfig()).replace(**overrides) if overrides else (
        config or GearshiftConfig())
    runner = Runner(model, config, loss_fn, optimizer_factory)
    wrapped = GearshiftModule(model, runner)
    if example_inputs is not None:
        runner.prepare(example_inputs)
    return wrapped
