"""Native clock backends by name (nvml | dry-run | sim): the one place they are built.

Devices (``gearshift.devices``) hand the runtime their backend through ``clock_backend()``, and
the daemon builds the one it serves with here; nothing else constructs ``gearshift._C``
backends. A native ClockBackend passed in is returned as it is.
"""

from __future__ import annotations

from ..errors import ConfigError

BACKENDS = ("nvml", "dry-run", "sim")


def _real_supported_mhz(gpu: int) -> list[int]:
    """The real GPU's SM clocks, read-only (for dry-run); [] when NVML is not usable."""
    from ..devices import nvml_query  # noqa: PLC0415

    rep = nvml_query.query()
    return list(rep.gpus[gpu].supported_sm_mhz) if rep.available and len(rep.gpus) > gpu else []


def make_backend(kind, *, gpu: int = 0, device_count: int = 1, supported_mhz=None,
                 default_mhz: int | None = None, switch_latency_s: float = 0.0,
                 library: str = ""):
    """A native clock backend. ``kind`` may already be one (e.g. a daemon client backend).

    ``default_mhz`` (sim): the clock a reset returns to; default the highest supported one.
    ``library`` (nvml): the libnvidia-ml to open by path (the fake GPU's fake library); default
    the driver's, or GEARSHIFT_NVML_LIBRARY.
    """
    from .._native import native  # noqa: PLC0415

    C = native()
    if isinstance(kind, C.ClockBackend):
        return kind
    if kind == "sim":
        clocks = list(supported_mhz or [])
        top = default_mhz if default_mhz is not None else (max(clocks) if clocks else 1980)
        return C.SimBackend(device_count=max(device_count, gpu + 1), supported_mhz=clocks,
                            default_mhz=int(top),
                            switch_latency_ns=int(round(switch_latency_s * 1e9)))
    if kind == "dry-run":
        clocks = list(supported_mhz) if supported_mhz is not None else _real_supported_mhz(gpu)
        return C.DryRunBackend(device_count=max(device_count, gpu + 1), supported_mhz=clocks)
    if kind == "nvml":
        return C.NvmlBackend(library=str(library))
    raise ConfigError(f"unknown clock backend {kind!r}",
                      "use one of nvml, dry-run, sim, or a device's clock_backend() "
                      "(gearshift.devices.open_device(...).clock_backend())")
