"""The fake GPU's NVML: the fake libnvidia-ml (``csrc/fake/fake_nvml.cpp``) and its control API.

The library answers the NVML calls of the real code paths: the native NVML clock backend locks
clocks through it, and ``devices/nvml_query.py`` (pynvml) reads its total-energy counter, clocks
and names. The simulator drives it through the ``fake_nvml_*`` control functions (ctypes): it
adds a device from a preset's clock table, reads back the clock the backend locked, and advances
the device's time and energy by what the simulated GPU spent at that clock. The counter is
published every ``update_period_s`` of device time, in whole mJ, each update with relative
noise ``noise_rel`` (see the library for the exact model).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# NVML updates the counter every few tens of ms on A100/H100 class boards (assumed order of
# magnitude; the profiler measures the period it sees rather than trusting this value).
DEFAULT_UPDATE_PERIOD_S = 0.020
DEFAULT_NOISE_REL = 0.002       # relative sensor noise of one update's increment (assumed)

# NVML's memory clock per preset (it only selects the SM clock table; one memory clock each)
MEMORY_MHZ = {"h100-sxm": 2619, "a100-sxm": 1593, "a40": 7251}
LIBRARY_NAME = "libgearshift-fake-nvml.so"

NVML_SUCCESS = 0
NVML_ERROR_NO_PERMISSION = 4


def library_path() -> Path:
    """The fake libnvidia-ml shipped next to the native extension (GEARSHIFT_FAKE_NVML: another)."""
    env = os.environ.get("GEARSHIFT_FAKE_NVML")
    if env:
        return Path(env)
    from ..._native import native_dir  # noqa: PLC0415

    return native_dir() / LIBRARY_NAME


_LIB: dict[str, ctypes.CDLL] = {}


def _load(path: str) -> ctypes.CDLL:
    lib = _LIB.get(path)
    if lib is not None:
        return lib
    if not Path(path).exists():
        from ...errors import NativeUnavailableError  # noqa: PLC0415

        raise NativeUnavailableError(f"the fake libnvidia-ml is missing ({path})",
                                     "reinstall gearshift from source (`make setup`), which "
                                     "builds it with the native extension")
    lib = ctypes.CDLL(path)
    u, ll, d = ctypes.c_uint, ctypes.c_longlong, ctypes.c_double
    sig = {
        "fake_nvml_add_device": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p,
                                                ctypes.POINTER(u), u, ctypes.POINTER(u), u, u,
                                                ll, ll, d, d, ctypes.c_ulonglong]),
        "fake_nvml_set_return": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]),
        "fake_nvml_advance": (ctypes.c_int, [u, ll, d]),
        "fake_nvml_now_ns": (ll, [u]),
        "fake_nvml_exact_energy_j": (d, [u]),
        "fake_nvml_requested_mhz": (u, [u]),
        "fake_nvml_applied_mhz": (u, [u]),
        "fake_nvml_refused": (ctypes.c_int, [u]),
        "fake_nvml_lock_log": (ctypes.c_int, [u, ctypes.c_int, ctypes.POINTER(ll),
                                              ctypes.POINTER(u), ctypes.c_int]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    _LIB[path] = lib
    return lib


class FakeNvmlGpu:
    """One GPU of the fake libnvidia-ml, added from ``preset`` (its clock table, default clock
    = the highest, switch latency); ``index`` is its NVML index in this process."""

    def __init__(self, preset, *, update_period_s: float = DEFAULT_UPDATE_PERIOD_S,
                 noise_rel: float = DEFAULT_NOISE_REL, seed: int = 0, path=None):
        if update_period_s <= 0:
            raise ValueError("update_period_s must be > 0")
        self.path = str(path or library_path())
        self.lib = _load(self.path)
        self.update_period_s = float(update_period_s)
        self.noise_rel = float(noise_rel)
        sm = list(preset.freqs_mhz)
        mem = [MEMORY_MHZ.get(preset.key, 1000)]
        arr = lambda v: (ctypes.c_uint * len(v))(*v)  # noqa: E731
        self.index = self.lib.fake_nvml_add_device(
            preset.name.encode(), f"GPU-fake-{preset.key}-{seed}".encode(),
            arr(sm), len(sm), arr(mem), len(mem), int(preset.max_freq_mhz),
            int(round(preset.switch_latency_s * 1e9)), int(round(update_period_s * 1e9)),
            float(noise_rel), float(preset.idle_power_w), int(seed))
        if self.index < 0:
            raise ValueError(f"the fake libnvidia-ml refused preset {preset.key}")
        self.default_mhz = int(preset.max_freq_mhz)

    # ---- the simulator's side --------------------------------------------------------------
    def advance(self, duration_s: float, energy_j: float) -> None:
        """The device ran ``duration_s`` of device time, spending ``energy_j``."""
        if duration_s <= 0:
            return
        rc = self.lib.fake_nvml_advance(self.index, int(round(duration_s * 1e9)),
                                        float(max(energy_j, 0.0)))
        if rc != NVML_SUCCESS:
            raise ValueError(f"fake NVML refused to advance by {duration_s} s, {energy_j} J")

    @property
    def now_s(self) -> float:
        return self.lib.fake_nvml_now_ns(self.index) * 1e-9

    def exact_j(self) -> float:
        """The true energy integral (what a perfect counter would read now)."""
        return float(self.lib.fake_nvml_exact_energy_j(self.index))

    def requested_mhz(self) -> int:
        """The clock the last successful lock (or reset: the default) asked for."""
        return int(self.lib.fake_nvml_requested_mhz(self.index))

    def applied_mhz(self) -> int:
        """The clock in force now (what nvmlDeviceGetClockInfo reports)."""
        return int(self.lib.fake_nvml_applied_mhz(self.index))

    def refused(self) -> int:
        """Lock/reset calls the library answered with an error."""
        return int(self.lib.fake_nvml_refused(self.index))

    def lock_log(self, start: int = 0) -> list[tuple[float, int]]:
        """Every successful lock/reset call from entry ``start``: (device time s, MHz; 0 =
        reset)."""
        n = self.lib.fake_nvml_lock_log(self.index, start, None, None, 0)
        if n <= 0:
            return []
        t = (ctypes.c_longlong * n)()
        f = (ctypes.c_uint * n)()
        n = self.lib.fake_nvml_lock_log(self.index, start, t, f, n)
        return [(t[i] * 1e-9, int(f[i])) for i in range(n)]

    def last_lock(self) -> tuple[float, int] | None:
        """The latest successful lock/reset call (device time s, MHz; 0 = reset), or None."""
        n = self.lib.fake_nvml_lock_log(self.index, 0, None, None, 0)
        return self.lock_log(n - 1)[0] if n > 0 else None

    def set_return(self, function: str | None, rc: int = 0) -> None:
        """Make an NVML entry point return ``rc`` on this GPU (e.g. NVML_ERROR_NO_PERMISSION
        for ``nvmlDeviceSetGpuLockedClocks``); rc 0 restores it; ``None``: restore all."""
        self.lib.fake_nvml_set_return(self.index, function.encode() if function else None,
                                      int(rc))
