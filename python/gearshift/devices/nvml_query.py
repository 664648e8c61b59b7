"""NVML, opened in this one place: read-only queries (what GPUs exist, their clocks,
permissions) and the handles every energy reader uses.

Nothing here changes a setting of the GPU (clocks are locked by the native backends).

Which libnvidia-ml: the driver's (pynvml's own search), or ``GEARSHIFT_NVML_LIBRARY`` (a path;
the native NVML backend honours the same variable), or the ``path`` a caller passes (the fake
GPU's fake libnvidia-ml). A library given by path gets a pynvml of its own, so it never
replaces the driver's library for the rest of the process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from ..errors import DeviceError


_INITIALISED: set[int] = set()   # id() of each pynvml module nvmlInit succeeded on
_BY_PATH: dict[str, object] = {}  # library path -> the pynvml bound to it


def _pynvml_for(path: str):
    """A pynvml module of its own whose calls go to the libnvidia-ml at ``path``."""
    import ctypes  # noqa: PLC0415
    import importlib.machinery  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    mod = _BY_PATH.get(path)
    if mod is not None:
        return mod
    spec = importlib.machinery.PathFinder.find_spec("pynvml")
    if spec is None:
        raise DeviceError("nvidia-ml-py is not installed", "`pip install nvidia-ml-py`")
    mod = importlib.util.module_from_spec(spec)
    # pynvml registers its error classes on sys.modules["pynvml"] while it loads: let that be
    # this copy, then put the process's own pynvml (if any) back
    saved = sys.modules.get("pynvml")
    sys.modules["pynvml"] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        if saved is None:
            sys.modules.pop("pynvml", None)
        else:
            sys.modules["pynvml"] = saved
    try:
        mod.nvmlLib = ctypes.CDLL(path)    # pynvml loads nothing itself once this is set
    except OSError as exc:
        raise DeviceError(f"NVML library {path} could not be opened ({exc})",
                          "unset GEARSHIFT_NVML_LIBRARY, or point it at a libnvidia-ml") from None
    _BY_PATH[path] = mod
    return mod


def library(path: str | os.PathLike | None = None):
    """pynvml, initialised once for the process (NVML counts inits; one is enough and it is
    never shut down, so handles stay valid). Raises DeviceError naming the fix.

    ``path``: the libnvidia-ml to use (default GEARSHIFT_NVML_LIBRARY, else the driver's)."""
    path = str(path or os.environ.get("GEARSHIFT_NVML_LIBRARY") or "")
    try:
        if path:
            pynvml = _pynvml_for(path)
        else:
            import pynvml  # noqa: PLC0415  (NVML only when asked)
    except ImportError as exc:
        raise DeviceError(f"nvidia-ml-py is not installed ({exc})",
                          "`pip install nvidia-ml-py`, or use device='sim'") from None
    if id(pynvml) not in _INITIALISED:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise DeviceError(f"NVML is unavailable: {exc} (no NVIDIA driver or GPU here)",
                              "run on a machine with an NVIDIA driver, or use device='sim'"
                              ) from None
        _INITIALISED.add(id(pynvml))
    return pynvml


def handle(index: int, path=None):
    """The NVML handle of GPU ``index`` (of the library at ``path``, see ``library``)."""
    nvml = library(path)
    count = nvml.nvmlDeviceGetCount()
    if not 0 <= index < count:
        raise DeviceError(f"GPU index {index} does not exist ({count} visible)",
                          f"pass a GPU index from 0 to {max(count - 1, 0)}")
    return nvml.nvmlDeviceGetHandleByIndex(index)


def energy_mj(gpu_handle, path=None) -> int:
    """GPU energy since the driver loaded, in whole mJ as NVML reports it (Volta and newer)."""
    return int(library(path).nvmlDeviceGetTotalEnergyConsumption(gpu_handle))


def energy_j(gpu_handle, path=None) -> float:
    """GPU energy since the driver loaded, in J."""
    return energy_mj(gpu_handle, path) / 1000.0


@dataclass
class GpuInfo:
    index: int
    name: str
    uuid: str = ""
    supported_sm_mhz: list[int] = field(default_factory=list)
    current_sm_mhz: int | None = None
    power_w: float | None = None
    may_lock_clocks: bool = False
    why_not: str = ""


@dataclass
class NvmlReport:
    available: bool
    reason: str = ""
    driver_version: str = ""
    gpus: list[GpuInfo] = field(default_factory=list)


def _may_lock_clocks() -> tuple[bool, str]:
    # nvmlDeviceSetGpuLockedClocks needs root (or CAP_SYS_ADMIN); asking it with a probe would
    # change the clock, so decide from the process's privileges instead.
    if os.geteuid() == 0:
        return True, ""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:") and int(line.split()[1], 16) & (1 << 21):
                    return True, ""
    except OSError:
        pass
    return False, ("locking SM clocks needs root or CAP_SYS_ADMIN; run `gearshift daemon` as "
                   "root and use device='daemon:/path.sock', or use device='dry-run'")


def query(path=None, *, may_lock: tuple[bool, str] | None = None) -> NvmlReport:
    """Every visible GPU, its SM clocks and whether this process may lock them (``may_lock``:
    that answer given, as the fake GPU does, instead of decided from this process's
    privileges). ``path``: the libnvidia-ml to ask (see ``library``)."""
    try:
        pynvml = library(path)
    except DeviceError as exc:
        return NvmlReport(False, exc.problem)
    may, why = may_lock if may_lock is not None else _may_lock_clocks()
    report = NvmlReport(True, driver_version=_s(pynvml.nvmlSystemGetDriverVersion()))
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        gpu = GpuInfo(i, _s(pynvml.nvmlDeviceGetName(h)), may_lock_clocks=may, why_not=why)
        try:
            gpu.uuid = _s(pynvml.nvmlDeviceGetUUID(h))
            mem = max(pynvml.nvmlDeviceGetSupportedMemoryClocks(h))
            gpu.supported_sm_mhz = sorted(
                pynvml.nvmlDeviceGetSupportedGraphicsClocks(h, mem), reverse=True)
            gpu.current_sm_mhz = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
            gpu.power_w = pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0
        except pynvml.NVMLError as exc:
            gpu.why_not = gpu.why_not or f"query failed: {exc}"
        report.gpus.append(gpu)
    return report


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
