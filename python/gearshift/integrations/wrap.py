"""``gearshift.compile(model, config)``: the model itself, whose training steps run under a schedule.

The model keeps its class (as a subclass), forward signature, parameters and state dict:
``compile`` changes the instance's class in place, as FSDP2's ``fully_shard`` does, to one whose
``forward`` first lets the Runner start an iteration. So Hugging Face ``Trainer`` still sees the
input columns, ``save_pretrained``/``save_model`` write the same keys (tied weights included),
and ``model.gearshift`` is the Runner. Whatever fails inside gearshift, the step runs as it
would without it (see ``Runner.fallback``).
"""

from __future__ import annotations

import functools
import weakref

import torch

from ..errors import ConfigError
from . import overlap_pass
from .config import GearshiftConfig
from .runner import Runner

__all__ = ["GearshiftModule", "Runner", "compile", "runner_of", "unwrap"]

# module -> Runner, outside the module's __dict__ so that a copy of the module (the tracer's,
# deepcopy) carries no runner and runs the plain forward
_RUNNERS: "weakref.WeakKeyDictionary[torch.nn.Module, Runner]" = weakref.WeakKeyDictionary()
_CLASSES: dict[type, type] = {}


class GearshiftModule(torch.nn.Module):
    """Mixin base of every model ``gearshift.compile`` returned; ``.gearshift`` is its Runner.

    Eval-mode and no-grad calls run untouched.
    """

    @property
    def gearshift(self) -> Runner | None:
        return _RUNNERS.get(self)


def _wrapped_class(cls: type) -> type:
    if issubclass(cls, GearshiftModule):
        return cls
    if cls in _CLASSES:
        return _CLASSES[cls]
    orig_forward = cls.forward

    @functools.wraps(orig_forward)        # keeps inspect.signature (Trainer reads the columns)
    def forward(self, *args, **kwargs):
        if torch.compiler.is_compiling():
            # torch.compile(model) of a wrapped model: gearshift's step runs eagerly beside the
            # compiled forward (a graph break), the model's forward is what gets compiled
            if self.training and torch.is_grad_enabled():
                _eager_step(self, args, kwargs)
            return orig_forward(self, *args, **kwargs)
        runner = _RUNNERS.get(self)
        if runner is not None and self.training and torch.is_grad_enabled():
            runner.guarded_step(_example(args, kwargs))
            call = _overlap_call(runner, self, orig_forward)
            if call is not None:
                try:
                    return call(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 (never break training)
                    runner._fail("running the step with overlap", exc)
        return orig_forward(self, *args, **kwargs)

    # the original name, so that save_pretrained's "architectures" and reprs stay as they were
    new = type(cls.__name__, (GearshiftModule, cls), {"forward": forward,
                                                      "__module__": cls.__module__,
                                                      "__qualname__": cls.__qualname__,
                                                      "_gearshift_base": cls})
    _CLASSES[cls] = new
    return new


@torch.compiler.disable
def _eager_step(model, args, kwargs) -> None:
    runner = _RUNNERS.get(model)
    if runner is not None:
        runner.guarded_step(_example(args, kwargs))


class _PlainStep(torch.nn.Module):
    """The model's own forward, without gearshift's, for the overlap pass to compile."""

    def __init__(self, model: torch.nn.Module, forward):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, *args, **kwargs):
        return self._forward(self.model, *args, **kwargs)


def _overlap_call(runner, model, orig_forward):
    """The schedule's overlap half: the model compiled with the overlap pass, or None when the
    schedule asks for no overlap (the model runs as it is)."""
    if runner.fallback_reason is not None:
        return None
    try:
        plain = runner.__dict__.get("_plain_step")
        if plain is None:
            plain = runner._plain_step = _PlainStep(model, orig_forward)
        call = overlap_pass.module_call(runner, plain)
    except Exception as exc:  # noqa: BLE001 (never break training)
        runner._fail("applying the overlap", exc)
        return None
    return None if call is plain else call


def _example(args, kwargs):
    return kwargs if kwargs and not args else args if len(args) != 1 or kwargs else args[0]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Undo ``gearshift.compile``: the model with its own class again, its runner closed."""
    runner = _RUNNERS.pop(model, None)
    if runner is not None:
        runner.close()
    base = getattr(type(model), "_gearshift_base", None)
    if base is not None:
        model.__class__ = base
    return model


def runner_of(model) -> Runner | None:
    """The Runner of a model that gearshift wraps, looking through DDP and torch.compile."""
    seen = set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        r = _RUNNERS.get(model) if isinstance(model, torch.nn.Module) else None
        r = r or getattr(model, "__dict__", {}).get("gearshift")
        if isinstance(r, Runner):
            return r
        model = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
    return None


def _after_optimizer_step(optimizer, _args, _kwargs) -> None:
    """Global optimizer hook: an optimizer over a wrapped model's parameters stepped."""
    if not _RUNNERS:
        return
    first = next((p for g in optimizer.param_groups for p in g["params"]), None)
    if first is None:
        return
    for model, runner in list(_RUNNERS.items()):
        ids = getattr(runner, "_param_ids", None)
        if ids is None:
            ids = runner._param_ids = {id(p) for p in model.parameters()}
        if id(first) in ids:
            runner.on_optimizer_step()


_HOOK = []


def _ensure_optimizer_hook() -> None:
    if not _HOOK:
        from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: PLC0415

        _HOOK.append(register_optimizer_step_post_hook(_after_optimizer_step))


def compile(model: torch.nn.Module, config: GearshiftConfig | None = None, *, loss_fn=None,  # noqa: A001
            optimizer_factory=None, example_inputs=None, **overrides) -> torch.nn.Module:
    """Make each training step of ``model`` run under a gearshift schedule; returns ``model``.

    ``config`` (or keyword overrides such as ``objective="max-slowdown=1.05"``,
    ``device="sim"``, ``schedule_path="sched.json"``) says what to optimise and where.
    ``loss_fn``/``optimizer_factory`` describe the step for tracing (defaults: the output's
    loss, or the sum of the output; AdamW). With ``example_inputs`` the plan is made now;
    otherwise on the first step. ``DDP(model)`` works before or after ``compile``.
    """
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"gearshift.compile needs a torch.nn.Module, got {type(model).__name__}",
                          "pass the model itself")
    config = (config or GearshiftConfig()).replace(**overrides) if overrides else (
        config or GearshiftConfig())
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

    if isinstance(model, DistributedDataParallel):
        # DDP(model) then compile: the inner model is wrapped; DDP calls its forward per step
        compile(model.module, config, loss_fn=loss_fn, optimizer_factory=optimizer_factory,
                example_inputs=example_inputs)
        runner_of(model.module).data_parallel = model
        return model
    old = _RUNNERS.get(model)
    if old is not None:
        old.close()
    runner = Runner(model, config, loss_fn, optimizer_factory)
    _ensure_optimizer_hook()
    model.__class__ = _wrapped_class(type(model))
    _RUNNERS[model] = runner
    if example_inputs is not None:
        runner.guarded_prepare(example_inputs)
    return model
