"""Kernel traces of one training iteration, from a model (op-level, no GPU) or from CUPTI.

``trace_step(module, example_inputs)`` traces a user's own module; ``trace_preset("gpt-1.3b")``
a model of the zoo; ``from_cupti_records(records)`` reads what the native launch hook recorded.
torch is imported on first call, never by ``import gearshift.trace``.
"""

from __future__ import annotations

from ..model import KernelTrace


def trace_step(module, example_inputs, loss_fn=None, optimizer_factory=None, device="auto",
               **options) -> KernelTrace:
    """One training step of ``module`` as a KernelTrace (see tracer.trace_step)."""
    try:
        from .tracer import trace_step as _trace  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        from .._deps import missing  # noqa: PLC0415

        raise (missing(exc, "gearshift.trace_step") or exc) from exc

    return _trace(module, example_inputs, loss_fn, optimizer_factory, device, **options)


def trace_preset(name: str, **sizes) -> KernelTrace:
    """Trace a zoo preset on meta; ``sizes`` override its config (batch=, seq=, layers=, ...)."""
    import dataclasses  # noqa: PLC0415

    from . import zoo  # noqa: PLC0415
    from .tracer import trace_step as _trace  # noqa: PLC0415

    module, inputs, loss_fn, cfg = zoo.build(name, **sizes)
    tp = getattr(cfg, "tp", 1)
    # tp / world_size: the ranks a collective spans (the simulator sizes link traffic with it)
    return _trace(module, inputs, loss_fn, model_name=name,
                  meta={"preset": name, "config": dataclasses.asdict(cfg), "tp": tp,
                        "world_size": tp})


def presets() -> list[str]:
    from . import zoo  # noqa: PLC0415

    return zoo.presets()


def from_cupti_records(records, **kwargs) -> KernelTrace:
    from .cupti import from_cupti_records as _conv  # noqa: PLC0415

    return _conv(records, **kwargs)


__all__ = ["from_cupti_records", "presets", "trace_preset", "trace_step"]
