"""gearshift: per-partition GPU clock and overlap scheduling for deep-learning training.

The pipeline, each stage readable and writable as a file::

    trace      -> KernelTrace     (op-level tracer on the meta device, or CUPTI on a GPU)
    partition  -> Partitioning    (runs of kernels worth one clock setting each)
    profile    -> Profile         (time and energy per partition and (clock, overlap) option)
    search     -> Frontier        (iteration time-energy Pareto frontier)
    select     -> Schedule        (partition -> SM clock + overlap, enforced by the runtime)

``import gearshift`` is lean: it loads neither torch nor CUDA, NVML or CUPTI; those load on
first use. Run ``gearshift info`` to see what this machine offers.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ClockPermissionError,
    ConfigError,
    DeviceError,
    FormatError,
    GearshiftError,
    InfeasibleSelectionError,
    NativeUnavailableError,
    ScheduleMismatchError,
    TraceError,
    UnsupportedClockError,
)
from .model import (  # noqa: E402
    Frontier,
    KernelRecord,
    KernelTrace,
    Overlap,
    Partition,
    Partitioning,
    Profile,
    Schedule,
)


def load_schedule(path) -> Schedule:
    """Read a schedule file (validated; enforce it only after ``check_compatible``)."""
    return Schedule.load(path)


def save_schedule(schedule: Schedule, path) -> None:
    schedule.save(path)


_LAZY = {
    # name -> (module, attribute): loaded on first access so `import gearshift` stays lean
    "compile": ("integrations", "compile"),
    "GearshiftConfig": ("integrations.config", "GearshiftConfig"),
    "measure": ("monitor", "measure"),
    "Monitor": ("monitor", "Monitor"),
    "Measurement": ("monitor", "Measurement"),
    "profile_partitions": ("profile", "profile_partitions"),
}


_LAZY_MODULES = ("pipelining",)   # gearshift.pipelining.wrap without importing it first


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        import importlib  # noqa: PLC0415

        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gearshift' has no attribute '{name}'")


def serve_metrics(port: int = 9400, addr: str = "127.0.0.1"):
    """Serve this process's Prometheus metrics (loopback by default); see gearshift.metrics."""
    from .metrics import serve_metrics as _serve  # noqa: PLC0415  (prometheus only when asked)

    return _serve(port, addr)


__all__ = [
    "ClockPermissionError", "ConfigError", "GearshiftConfig", "Measurement", "Monitor",
    "compile", "measure", "profile_partitions", "DeviceError", "FormatError", "Frontier",
    "GearshiftError", "InfeasibleSelectionError", "KernelRecord", "KernelTrace",
    "NativeUnavailableError", "Overlap", "Partition", "Partitioning", "Profile", "Schedule",
    "ScheduleMismatchError", "TraceError", "UnsupportedClockError", "__version__",
    "load_schedule", "save_schedule", "serve_metrics",
]
