"""Kernel traces of one training iteration, from a model (op-level, no GPU) or from CUPTI.

``trace_step(module, example_inputs)`` traces a user's own module; ``trace_preset("gpt-1.3b")``
a model of the zoo; ``from_cupti_records(records)`` reads what the native launch hook recorded.
torch is imported on first call, never by ``import gearshift.trace``.
"""

from __future__ import annotations

from ..model import KernelTrace


def trace_step(module, example_inputs, loss_fn=None, optimizer_factory=None, device="auto",
               *, nanobatches: int = 1, **options) -> KernelTrace:
    """One training step of ``module`` as a KernelTrace (see tracer.trace_step).

    ``nanobatches`` > 1: the step as that many nanobatches whose kernels interleave
    (trace/nanobatch.py), as ``trace_preset(..., nanobatches=K)`` traces a zoo model: the step
    is traced at the nanobatch size (dim 0 of every tensor input divided by K) and split.
    """
    try:
        from .tracer import trace_step as _trace  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        from .._deps import missing  # noqa: PLC0415

        raise (missing(exc, "gearshift.trace_step") or exc) from exc

    if nanobatches == 1:
        return _trace(module, example_inputs, loss_fn, optimizer_factory, device, **options)
    from .nanobatch import nanobatch_inputs, split_nanobatches  # noqa: PLC0415

    if options.get("data_parallel"):
        # the split would repeat the gradient collectives per nanobatch; they run once per step
        from ..errors import TraceError  # noqa: PLC0415

        raise TraceError("nanobatches are not traced under data parallelism (DDP/FSDP) yet",
                         "set nanobatches=1 for a data-parallel model")
    from ..errors import TraceError  # noqa: PLC0415

    try:
        trace = _trace(module, nanobatch_inputs(example_inputs, nanobatches), loss_fn,
                       optimizer_factory, device, **options)
    except TraceError as exc:
        # most often a loss_fn that reads a batch-sized tensor (targets) besides the inputs
        raise TraceError(f"tracing one of {nanobatches} nanobatches (dim 0 of the inputs / "
                         f"{nanobatches}) failed: {exc.problem}",
                         "pass every batch-sized tensor the step reads (targets too) among its "
                         "inputs, or set nanobatches=1") from exc
    return split_nanobatches(trace, nanobatches)


def trace_preset(name: str, nanobatches: int = 1, **sizes) -> KernelTrace:
    """Trace a zoo preset on meta; ``sizes`` override its config (batch=, seq=, layers=, ...).

    ``nanobatches`` > 1 splits the microbatch (``batch``) into that many nanobatches whose
    kernels interleave (trace/nanobatch.py); the batch must divide evenly."""
    from . import zoo  # noqa: PLC0415

    cfg = zoo.preset_config(name, **sizes)
    return trace_config(cfg, name, nanobatches)


def trace_config(cfg, name: str, nanobatches: int = 1) -> KernelTrace:
    """Trace a zoo config (GPTConfig, LlamaConfig, ResNetConfig) split into ``nanobatches``."""
    import dataclasses  # noqa: PLC0415

    from ..errors import TraceError  # noqa: PLC0415
    from . import zoo  # noqa: PLC0415
    from .nanobatch import split_nanobatches  # noqa: PLC0415
    from .tracer import trace_step as _trace  # noqa: PLC0415

    if nanobatches < 1 or cfg.batch % nanobatches:
        raise TraceError(f"batch {cfg.batch} does not split into {nanobatches} nanobatches",
                         "pick a nanobatch count that divides the batch (or set --batch)")
    nano = dataclasses.replace(cfg, batch=cfg.batch // nanobatches)
    module, inputs, loss_fn, _ = zoo.build_config(nano)
    tp = getattr(cfg, "tp", 1)
    # tp / world_size: the ranks a collective spans (the simulator sizes link traffic with it)
    trace = _trace(module, inputs, loss_fn, model_name=name,
                   meta={"preset": name, "config": dataclasses.asdict(cfg), "tp": tp,
                         "world_size": tp})
    return split_nanobatches(trace, nanobatches)


def presets() -> list[str]:
    from . import zoo  # noqa: PLC0415

    return zoo.presets()


def from_cupti_records(records, **kwargs) -> KernelTrace:
    from .cupti import from_cupti_records as _conv  # noqa: PLC0415

    return _conv(records, **kwargs)


__all__ = ["from_cupti_records", "presets", "trace_preset", "trace_step"]
