"""Devices: ``nvml`` (a real GPU), ``dry-run`` (a real GPU whose clocks are never changed) and
``sim`` (the calibrated simulated GPU, the default where there is no GPU)."""


def get_device(kind: str = "sim", **options):
    """A device by kind. ``sim`` takes ``preset`` (h100-sxm, a100-sxm, a40; default from
    GEARSHIFT_SIM_PRESET) and ``switch_latency_s``."""
    from ..errors import ConfigError  # noqa: PLC0415

    if kind == "sim":
        from ..config import environment  # noqa: PLC0415
        from .sim import SimDevice  # noqa: PLC0415

        preset = options.pop("preset", None) or environment().sim_preset
        return SimDevice(preset, **options)
    if kind.startswith("daemon:"):
        from ..daemon.device import DaemonDevice  # noqa: PLC0415

        return DaemonDevice.from_device(kind, **options)
    raise ConfigError(f"get_device does not build '{kind}' devices here",
                      "use get_device('sim', preset=...); nvml and dry-run devices come from "
                      "their own modules")
