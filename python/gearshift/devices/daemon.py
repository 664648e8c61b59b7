"""The ``daemon`` device: clocks through the root-owned daemon, measurements read-only.

One connection to the daemon (the native ``DaemonClockBackend``) carries every clock request,
whether this device's ``set_sm_clock`` or the runtime's controller thread sends it, so the
lease the daemon grants belongs to one client. Reading a GPU's energy counter needs no
privilege: energy and time come from ``measure`` (any Device), else from NVML read-only.
"""

from __future__ import annotations

import time

from ..errors import DeviceError
from ..model import DeviceFacts
from .base import Capabilities


class DaemonDevice:
    kind = "daemon"

    def __init__(self, socket_path: str, gpu: int = 0, measure=None, timeout_s: float = 5.0):
        from .._native import native  # noqa: PLC0415

        # Connects, learns the GPUs and their clocks, and heartbeats from a native thread so
        # the lease outlives long stretches without switches. Errors arrive as gearshift errors.
        self._backend = native().DaemonClockBackend(str(socket_path), float(timeout_s))
        self.socket_path = str(socket_path)
        n = self._backend.device_count()
        if not 0 <= gpu < n:
            raise DeviceError(f"the daemon at {socket_path} serves {n} GPU(s); there is no GPU "
                              f"{gpu}", f"pick a GPU index from 0 to {max(n - 1, 0)}")
        self.gpu = self.index = gpu
        self._measure = measure
        # A simulated measure must see the clock to model it; a real one only reads counters.
        self._follows = measure is not None and measure.capabilities.simulated
        self._nvml_handle = None
        clocks = self._backend.supported_sm_mhz(gpu)
        if measure is not None and tuple(measure.facts.supported_freqs_mhz):
            self.facts = measure.facts
        else:
            self.facts = DeviceFacts(name=f"GPU {gpu} via the gearshift daemon at {socket_path}",
                                     supported_freqs_mhz=tuple(clocks))
        self.source = "simulated" if self._follows else "measured"
        self.capabilities = Capabilities(
            simulated=False, clock_control=True,
            energy_source=measure.capabilities.energy_source if measure is not None else "measured",
            switch_latency_s=getattr(getattr(measure, "capabilities", None),
                                     "switch_latency_s", None),
            needs_step=True)
        if hasattr(measure, "play_step"):
            self._plays_through(measure)
        elif measure is None:
            self.play_step = self._real_step
            self.session_started = self._real_session_started

    def _plays_through(self, gpu) -> None:
        """The in-loop path (integrations/online.py) on a GPU that plays its steps (the fake
        GPU): its launches, stream signals and energy counter are the GPU's, while every clock
        lock of the runtime's controller goes through this daemon connection."""
        self.may_lock_clocks = True
        self.play_step = gpu.play_step
        self.attach = gpu.attach
        self.session_started = gpu.session_started

    def _real_session_started(self, session) -> None:
        self._events_seen = 0

    def _real_step(self, session, schedule=None, overlaps=None):
        """A real GPU ran the step already (``overlaps`` included): read it as the ``nvml``
        device does."""
        from .gpu import read_step  # noqa: PLC0415

        return read_step(self, session, schedule, int(round(self.energy_j() * 1000)))

    def session_options(self) -> dict:
        """How a runtime Session drives the GPU: the measuring GPU's signal path, this
        daemon's clock backend (the daemon owns the clocks)."""
        opts = dict(self._measure.session_options()) if hasattr(
            self._measure, "session_options") else dict(gpu=self.gpu, auto_wrap=False)
        opts["backend"] = self._backend
        opts["gpu"] = self.gpu              # the daemon's GPU index, not the measuring GPU's
        return opts

    @property
    def last_kernel_durations_s(self):
        return getattr(self._measure, "last_kernel_durations_s", None)

    @property
    def name(self) -> str:
        return self.facts.name

    def clock_backend(self):
        return self._backend

    def _handle(self):
        if self._nvml_handle is None:
            from . import nvml_query  # noqa: PLC0415

            try:
                self._nvml_handle = nvml_query.handle(self.gpu)
            except DeviceError as exc:
                raise DeviceError(
                    f"no energy counter for the daemon device: {exc.problem}",
                    "pass measure=<a device that measures energy>, e.g. the sim device") from None
        return self._nvml_handle

    def energy_j(self) -> float:
        if self._measure is not None:
            return self._measure.energy_j()
        from . import nvml_query  # noqa: PLC0415

        return nvml_query.energy_j(self._handle())

    def time_s(self) -> float:
        return self._measure.time_s() if self._measure is not None else time.monotonic()

    def set_sm_clock(self, freq_mhz: int) -> None:
        self._backend.lock_sm_mhz(self.gpu, int(freq_mhz))
        if self._follows:
            self._measure.set_sm_clock(freq_mhz)

    def reset_sm_clock(self) -> None:
        try:
            self._backend.reset(self.gpu)
        except DeviceError:
            pass  # the connection is gone, and with it the lease: the daemon reset the GPU
        if self._follows:
            self._measure.reset_sm_clock()

    def close(self) -> None:
        self.reset_sm_clock()
