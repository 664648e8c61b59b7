"""GPU energy counters: NVML's total-energy counter per GPU, or a gearshift Device's counters.

Both are monotone, so a window's energy is a difference of two reads. NVML reports millijoules
since the driver loaded (Volta and newer); the simulated device integrates its model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import DeviceError

SOURCE_BY_KIND = {"sim": "simulated", "nvml": "measured", "dry-run": "measured",
                  "daemon": "measured", "replay": "replayed"}


@dataclass
class CounterRead:
    time_s: float
    energy_j: dict[str, float]     # component -> J
    origin: int = 0                # which device's counters (changes when the device does)


class NvmlCounters:
    """The NVML energy counter of each listed GPU (all visible GPUs by default)."""

    source = "measured"

    def __init__(self, indices: list[int] | None = None):
        from ..devices import nvml_query  # noqa: PLC0415  (NVML only when a GPU is measured)

        pynvml = self._nvml = nvml_query.library()   # the one place NVML is opened
        count = pynvml.nvmlDeviceGetCount()
        self.indices = list(range(count)) if indices is None else list(indices)
        bad = [i for i in self.indices if not 0 <= i < count]
        if bad:
            raise DeviceError(f"GPU index {bad[0]} does not exist ({count} visible)",
                              f"pass indices in 0..{count - 1}")
        self._handles = {f"gpu{i}": pynvml.nvmlDeviceGetHandleByIndex(i) for i in self.indices}
        for comp, h in self._handles.items():
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            except pynvml.NVMLError as exc:
                raise DeviceError(f"{comp} has no readable energy counter ({exc})",
                                  "the counter needs a Volta or newer GPU") from exc

    def read(self) -> CounterRead:
        t = time.monotonic()
        return CounterRead(t, {c: self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0
                               for c, h in self._handles.items()})

    def close(self) -> None:
        """Nothing to release: NVML stays open for the process (gearshift.devices.nvml_query)."""


class DeviceCounters:
    """Counters of gearshift Device objects (``energy_j()``, ``time_s()``).

    A simulated device's clock is simulated time, so a window's time is what the device ran,
    not how long the host took to simulate it.
    """

    def __init__(self, devices):
        self.devices = list(devices)
        kinds = {getattr(d, "kind", "sim") for d in self.devices}
        sources = {getattr(d, "source", None) or SOURCE_BY_KIND.get(getattr(d, "kind", "sim"),
                                                                     "measured")
                   for d in self.devices}
        self.source = sources.pop() if len(sources) == 1 else "measured"
        self.simulated_time = kinds <= {"sim", "replay"}
        self.components = [f"gpu{i}" if len(self.devices) > 1 else "gpu0"
                           for i in range(len(self.devices))]
        self.names = {c: getattr(d, "name", c) for c, d in zip(self.components, self.devices)}

    def read(self) -> CounterRead:
        if self.simulated_time:
            t = max(float(d.time_s()) for d in self.devices)
        else:
            t = time.monotonic()
        return CounterRead(t, {c: float(d.energy_j()) for c, d in zip(self.components, self.devices)})

    def close(self) -> None:
        pass


class CurrentDeviceCounters:
    """Follows the device gearshift runs on in this process (``set_current_device``), so a
    window opened before ``gearshift.compile`` picked its device still reports it. A window
    during which the device changed counts the new device from zero: a new simulated device's
    counters start at zero."""

    def __init__(self, current):
        self._current = current          # () -> Device | None
        self.simulated_time = True

    def _counters(self):
        dev = self._current()
        return DeviceCounters([dev]) if dev is not None else None

    @property
    def source(self) -> str:
        c = self._counters()
        return c.source if c else "simulated"

    @property
    def names(self) -> dict:
        c = self._counters()
        return c.names if c else {}

    def read(self) -> CounterRead:
        dev = self._current()
        if dev is None:
            return CounterRead(0.0, {"gpu0": 0.0})
        r = DeviceCounters([dev]).read()
        r.origin = id(dev)
        return r

    def close(self) -> None:
        pass


class NoGpuCounters:
    """No GPU to read (``why`` says so): a window reports its GPU part as not measured."""

    source = "measured"
    simulated_time = False
    names: dict = {}

    def __init__(self, why: str):
        self.why = why

    def read(self) -> CounterRead:
        return CounterRead(time.monotonic(), {})

    def close(self) -> None:
        pass
