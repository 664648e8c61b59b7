"""The ``daemon`` device: clocks through the daemon, measurements from a read-only source.

Reading a GPU's energy counter needs no privilege, so only clock changes go through the
socket; energy and time come from ``measure`` (any Device), else from NVML read-only.
"""

from __future__ import annotations

import time

from ..errors import DeviceError
from ..model import DeviceFacts
from .client import DaemonClient
from .select import parse_daemon_device


class DaemonDevice:
    kind = "daemon"

    def __init__(self, socket_path: str, gpu: int = 0, measure=None, timeout_s: float = 5.0):
        self.client = DaemonClient(socket_path, timeout_s)
        if not 0 <= gpu < self.client.gpu_count:
            n = self.client.gpu_count
            self.client.close()
            raise DeviceError(f"the daemon at {socket_path} serves {n} GPU(s); there is no GPU "
                              f"{gpu}", f"pick a GPU index from 0 to {max(n - 1, 0)}")
        self.gpu = gpu
        self._measure = measure
        # A simulated measure must see the clock to model it; a real one only reads counters.
        self._follows = getattr(measure, "kind", "") == "sim"
        self._nvml = None
        self.client.start_heartbeat()  # the lease outlives long stretches without switches
        clocks = self.client.supported_sm_mhz(gpu)
        if measure is not None and tuple(measure.facts.supported_freqs_mhz):
            self.facts = measure.facts
        else:
            self.facts = DeviceFacts(name=f"{self.client.backend} GPU {gpu} via daemon",
                                     supported_freqs_mhz=tuple(clocks))

    @classmethod
    def from_device(cls, device: str, gpu: int = 0, measure=None) -> "DaemonDevice":
        """From a config string ``daemon:/path/to.sock``."""
        return cls(parse_daemon_device(device), gpu, measure)

    @property
    def name(self) -> str:
        return self.facts.name

    def _nvml_handle(self):
        if self._nvml is None:
            try:
                import pynvml  # noqa: PLC0415

                pynvml.nvmlInit()
                self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(self.gpu))
            except Exception as exc:
                raise DeviceError(
                    f"no energy counter for the daemon device: NVML is not readable ({exc})",
                    "pass measure=<a device that measures energy>, e.g. the sim device") from None
        return self._nvml

    def energy_j(self) -> float:
        if self._measure is not None:
            return self._measure.energy_j()
        nvml, h = self._nvml_handle()
        return nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0

    def time_s(self) -> float:
        return self._measure.time_s() if self._measure is not None else time.monotonic()

    def set_sm_clock(self, freq_mhz: int) -> None:
        self.client.lock(self.gpu, int(freq_mhz))
        if self._follows:
            self._measure.set_sm_clock(freq_mhz)

    def reset_sm_clock(self) -> None:
        try:
            self.client.reset(self.gpu)
        except DeviceError:
            pass  # the connection is gone, and with it the lease: the daemon reset the GPU
        if self._follows:
            self._measure.reset_sm_clock()

    def close(self) -> None:
        self.reset_sm_clock()
        self.client.close()
