"""Turn a config's device string into a Device, with errors that say what to do."""

from __future__ import annotations

import os

from ..config import environment, validate_device
from ..errors import ClockPermissionError, DeviceError


def auto_kind() -> tuple[str, str]:
    """(kind, why): nvml with a GPU this process may clock, dry-run with one it may not, else sim."""
    env = environment()
    if env.device != "auto":
        return env.device, "set by GEARSHIFT_DEVICE"
    if os.environ.get("GEARSHIFT_FAKE_GPU"):
        return "fake-gpu", (f"GEARSHIFT_FAKE_GPU={os.environ['GEARSHIFT_FAKE_GPU']}: the "
                            "simulated GPU played behind fake CUPTI/NVML")
    from ..devices import nvml_query  # noqa: PLC0415

    rep = nvml_query.query()
    if not (rep.available and rep.gpus):
        return "sim", f"no GPU ({rep.reason or 'none visible'}); using the simulated GPU"
    if all(g.may_lock_clocks for g in rep.gpus):
        return "nvml", "a GPU is present and this process may lock its clocks"
    from ..daemon.select import choose_clock_backend  # noqa: PLC0415

    clk = choose_clock_backend("auto", True, False, env.daemon_socket, rep.gpus[0].why_not)
    if clk.backend == "daemon":
        return clk.device, clk.why
    return "dry-run", "a GPU is present but this process may not lock clocks: " + rep.gpus[0].why_not


def resolve_device(kind: str = "auto", sim_preset: str | None = None):
    kind = validate_device(kind)
    if kind == "auto":
        kind, _ = auto_kind()
    if kind == "sim":
        from ..devices.sim import SimDevice  # noqa: PLC0415

        return SimDevice(sim_preset or environment().sim_preset)
    if kind == "fake-gpu":
        from ..devices.fake_gpu import FakeGpuDevice  # noqa: PLC0415

        lock = os.environ.get("GEARSHIFT_FAKE_GPU_LOCK", "1") != "0"
        return FakeGpuDevice(sim_preset or os.environ.get("GEARSHIFT_FAKE_GPU") or
                             environment().sim_preset, may_lock_clocks=lock)
    if kind == "nvml":
        from ..devices import nvml_query  # noqa: PLC0415

        rep = nvml_query.query()
        if not (rep.available and rep.gpus):
            raise DeviceError(f"device 'nvml' needs an NVIDIA GPU ({rep.reason or 'none visible'})",
                              "use device='sim' (simulated GPU) on this machine")
        if not rep.gpus[0].may_lock_clocks:
            raise ClockPermissionError(
                f"this process may not lock the SM clocks of {rep.gpus[0].name}",
                "run as root, or start `sudo gearshift daemon` and use device='daemon:/run/"
                "gearshift/gearshift.sock', or use device='dry-run' to log switches only")
    return _real_device(kind)


def _real_device(kind: str):
    if kind in ("nvml", "dry-run"):
        from .gpu_device import GpuDevice  # noqa: PLC0415

        return GpuDevice(kind)
    # nvml, dry-run and daemon devices live with the runtime; import them only when asked
    from ..devices import get_device  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415

    try:
        return get_device(kind)
    except (ImportError, ConfigError) as exc:
        raise DeviceError(f"device '{kind}' is not available in this build ({exc})",
                          "use device='sim', or a gearshift built with the runtime") from exc
