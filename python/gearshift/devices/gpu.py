"""A real GPU behind the Device protocol: NVML energy counter and clocks through the runtime's
native clock backend (``nvml`` locks them; ``dry-run`` only logs what it would do)."""

from __future__ import annotations

import time

from ..errors import ClockPermissionError, DeviceError
from ..model import DeviceFacts
from . import nvml_query
from .base import Capabilities


class GpuDevice:
    source = "measured"

    def __init__(self, kind: str = "nvml", index: int = 0, info: nvml_query.GpuInfo | None = None):
        if info is None:
            rep = nvml_query.query()
            if not (rep.available and len(rep.gpus) > index):
                raise DeviceError(f"no NVIDIA GPU {index} here ({rep.reason or 'none visible'})",
                                  "use device='sim' (the simulated GPU) on this machine")
            info = rep.gpus[index]
        self.kind = kind
        self.index = index
        self.facts = DeviceFacts(info.name, tuple(info.supported_sm_mhz) or (0,))
        self.capabilities = Capabilities(simulated=False, clock_control=kind == "nvml",
                                         energy_source="measured", needs_step=True)
        self.nvml = nvml_query.library()
        self.nvml_handle = nvml_query.handle(index)
        self._backend = None

    @classmethod
    def open(cls, kind: str, index: int = 0) -> "GpuDevice":
        """The registry's opener: refuses, with the fix, a GPU this process may not clock."""
        rep = nvml_query.query()
        if not (rep.available and rep.gpus):
            raise DeviceError(f"device '{kind}' needs an NVIDIA GPU ({rep.reason or 'none visible'})",
                              "use device='sim' (simulated GPU) on this machine")
        if not index < len(rep.gpus):
            raise DeviceError(f"there is no GPU {index} here ({len(rep.gpus)} visible)",
                              f"pick a GPU index from 0 to {len(rep.gpus) - 1}")
        info = rep.gpus[index]
        if kind == "nvml" and not info.may_lock_clocks:
            raise ClockPermissionError(
                f"this process may not lock the SM clocks of {info.name}",
                "run as root, or start `sudo gearshift daemon` and use device='daemon:/run/"
                "gearshift/gearshift.sock', or use device='dry-run' to log switches only")
        return cls(kind, index, info)

    @property
    def name(self) -> str:
        return self.facts.name + (" (dry-run: clocks never changed)" if self.kind == "dry-run"
                                  else "")

    def clock_backend(self):
        if self._backend is None:
            from ..runtime.backends import make_backend  # noqa: PLC0415

            self._backend = make_backend(self.kind, gpu=self.index,
                                         supported_mhz=list(self.facts.supported_freqs_mhz))
        return self._backend

    def clock_permission_lost(self, reason: str = "") -> None:
        """NVML refused a lock although this process looked privileged: drive the GPU in dry-run
        from now on (switches logged, never attempted again); the in-loop path then predicts."""
        self.kind = "dry-run"
        self._backend = None
        self.capabilities = Capabilities(simulated=False, clock_control=False,
                                         energy_source="measured", needs_step=True)

    def energy_j(self) -> float:
        return nvml_query.energy_j(self.nvml_handle)

    def time_s(self) -> float:
        return time.monotonic()

    def set_sm_clock(self, freq_mhz: int) -> None:
        self.clock_backend().lock_sm_mhz(self.index, int(freq_mhz))

    def reset_sm_clock(self) -> None:
        self.clock_backend().reset(self.index)

    # ---- the runtime's view (integrations.online drives these) ----------------------------
    @property
    def may_lock_clocks(self) -> bool:
        return self.capabilities.clock_control

    def energy_counter_mj(self) -> int:
        return int(round(self.energy_j() * 1000.0))

    def session_options(self) -> dict:
        """The real signal path (stream writes), this device's clock backend; iterations are
        begun by the runner (``auto_wrap=False``) so each step's launch count is checked."""
        return dict(backend=self, gpu=self.index, auto_wrap=False)

    def session_started(self, session) -> None:
        self._events_seen = 0

    def play_step(self, session, schedule=None, overlaps=None):
        """The GPU ran the step already, with whatever overlap the program applied
        (``overlaps``, which a simulated device has to play): read what it left
        (see ``read_step``)."""
        return read_step(self, session, schedule, self.energy_counter_mj())


def read_step(device, session, schedule, energy_mj: int):
    """What a real GPU's step left, for the in-loop profiler: each partition's boundary time is
    when the runtime's controller saw its boundary signal (host steady clock, the base of
    ``time.monotonic``); one energy-counter read per step, at its end. ``device`` remembers how
    many of the session's events it has seen (``_events_seen``, reset by ``session_started``)."""
    from .fake_gpu import StepSample  # noqa: PLC0415

    events = session.switch_events()
    new = events[getattr(device, "_events_seen", 0):]
    device._events_seen = len(events)
    first: dict[int, float] = {}
    for e in new:
        if e.detect_ns:
            first.setdefault(e.partition, e.detect_ns * 1e-9)
    n = len(schedule.entries) if schedule is not None else 1
    bounds = [first.get(i) for i in range(n)] if first else []
    return StepSample(bounds, [(time.monotonic(), energy_mj)], None)
