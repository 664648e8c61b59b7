"""A real GPU behind the Device protocol: NVML energy counter and clocks through the runtime's
native clock backend (``nvml`` locks them; ``dry-run`` only logs what it would do)."""

from __future__ import annotations

import time

from ..errors import DeviceError
from ..model import DeviceFacts


class GpuDevice:
    def __init__(self, kind: str = "nvml", index: int = 0):
        from ..devices import nvml_query  # noqa: PLC0415

        rep = nvml_query.query()
        if not (rep.available and len(rep.gpus) > index):
            raise DeviceError(f"no NVIDIA GPU {index} here ({rep.reason or 'none visible'})",
                              "use device='sim' (the simulated GPU) on this machine")
        info = rep.gpus[index]
        self.kind = kind
        self.index = index
        self.source = "measured"
        self.facts = DeviceFacts(info.name, tuple(info.supported_sm_mhz) or (0,))
        import pynvml  # noqa: PLC0415

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        from ..runtime import make_backend  # noqa: PLC0415

        self.backend = make_backend(kind, gpu=index,
                                    supported_mhz=list(self.facts.supported_freqs_mhz))

    @property
    def name(self) -> str:
        return self.facts.name + (" (dry-run: clocks never changed)" if self.kind == "dry-run"
                                  else "")

    def energy_j(self) -> float:
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.nvml_handle) / 1000.0

    def time_s(self) -> float:
        return time.monotonic()

    def set_sm_clock(self, freq_mhz: int) -> None:
        self.backend.lock_sm_mhz(self.index, int(freq_mhz))

    def reset_sm_clock(self) -> None:
        self.backend.reset(self.index)

    # ---- the runtime's view (integrations.online drives these) ----------------------------
    @property
    def may_lock_clocks(self) -> bool:
        return self.kind != "dry-run"

    def energy_counter_mj(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.nvml_handle))

    def session_options(self) -> dict:
        """The real signal path (stream writes), this device's clock backend; iterations are
        begun by the runner (``auto_wrap=False``) so each step's launch count is checked."""
        return dict(backend=self.backend, gpu=self.index, auto_wrap=False)

    def session_started(self, session) -> None:
        self._events_seen = 0

    def play_step(self, session, schedule=None):
        """The GPU ran the step already: read what it left. Boundary times are when the
        runtime's controller saw each boundary signal (host steady clock, the base of
        ``time.monotonic``); one energy-counter read per step, at its end."""
        from ..devices.fake_gpu import StepSample  # noqa: PLC0415

        events = session.switch_events()
        new = events[getattr(self, "_events_seen", 0):]
        self._events_seen = len(events)
        first: dict[int, float] = {}
        for e in new:
            if e.detect_ns:
                first.setdefault(e.partition, e.detect_ns * 1e-9)
        n = len(schedule.entries) if schedule is not None else 1
        bounds = [first.get(i) for i in range(n)] if first else []
        return StepSample(bounds, [(time.monotonic(), self.energy_counter_mj())], None)
