"""Fallback when CUPTI cannot be subscribed (another profiler holds it): explicit partition
markers placed from Python at module boundaries. Coarser than the launch hook (a module, not a
kernel, starts a partition), so schedules should cut at module boundaries for this path."""

from __future__ import annotations


def install_module_markers(model, session, module_partitions: dict[str, int]):
    """Mark partition starts from forward pre-hooks: {module name: partition index}.

    Returns the hook handles (call ``.remove()`` on each to uninstall). The markers are no-ops
    while the CUPTI hook is active, so installing them unconditionally is safe.
    """
    from ..errors import ConfigError  # noqa: PLC0415

    modules = dict(model.named_modules())
    missing = [name for name in module_partitions if name not in modules]
    if missing:
        raise ConfigError(f"modules not found in the model: {', '.join(missing[:5])}",
                          "use names from model.named_modules()")
    handles = []
    for name, partition in module_partitions.items():
        def pre_hook(_module, _inputs, _p=partition):
            session.mark(_p)
        handles.append(modules[name].register_forward_pre_hook(pre_hook))
    return handles
