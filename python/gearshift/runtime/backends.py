"""Clock backends by name: nvml | dry-run | sim (or a native ClockBackend passed through)."""

from __future__ import annotations

from ..errors import ConfigError

BACKENDS = ("nvml", "dry-run", "sim")


def _query_supported_mhz(gpu: int) -> list[int]:
    """The real GPU's SM clocks, read-only (for dry-run); [] when NVML is not usable."""
    try:
        import pynvml  # noqa: PLC0415

        pynvml.nvmlInit()
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(gpu)
            mem = max(pynvml.nvmlDeviceGetSupportedMemoryClocks(h))
            return sorted(pynvml.nvmlDeviceGetSupportedGraphicsClocks(h, mem), reverse=True)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - any failure means "no list": dry-run then accepts all
        return []


def make_backend(kind, *, gpu: int = 0, device_count: int = 1, supported_mhz=None,
                 default_mhz: int = 1980, switch_latency_s: float = 0.0):
    """A native clock backend. ``kind`` may already be one (e.g. a daemon client backend)."""
    from .._native import native  # noqa: PLC0415

    C = native()
    if isinstance(kind, C.ClockBackend):
        return kind
    if kind == "sim":
        return C.SimBackend(device_count=max(device_count, gpu + 1),
                            supported_mhz=list(supported_mhz or []), default_mhz=int(default_mhz),
                            switch_latency_ns=int(round(switch_latency_s * 1e9)))
    if kind == "dry-run":
        clocks = list(supported_mhz) if supported_mhz is not None else _query_supported_mhz(gpu)
        return C.DryRunBackend(device_count=max(device_count, gpu + 1), supported_mhz=clocks)
    if kind == "nvml":
        return C.NvmlBackend()
    raise ConfigError(f"unknown clock backend {kind!r}",
                      "use one of nvml, dry-run, sim (or pass a native backend object)")
