"""``fake-gpu``: the simulated GPU played behind the lowest native layer.

A CPU machine runs the exact code path of a real GPU (record with the CUPTI launch hook,
profile online with boundary signals and the NVML energy counter, plan, enforce through the
runtime's controller), with the GPU itself replaced at the bottom:

- launches: every training step's kernels (the torch ops the step runs, traced once, named as
  the CUDA libraries name them) go through the runtime's fake CUPTI callbacks, so the launch
  hook records and counts them exactly as on a GPU;
- stream signals: the runtime's fake device plays the launches in device time, each kernel
  taking the time the simulated GPU gives it at the clock in force (switch latency included),
  so boundary signals carry simulated device times;
- clocks: locks go through the runtime's simulated clock backend (supported clocks, the
  preset's switch latency), or its dry-run backend when clocks may not be locked;
- energy: ``FakeEnergyCounter``, NVML's total-energy counter in mJ with an update period and
  noise, integrating the simulated power of what was played.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ...model import NO_OVERLAP, DeviceFacts, Partitioning
from .names import cuda_kernel_name, launch_geometry
from .nvml import DEFAULT_NOISE_REL, DEFAULT_UPDATE_PERIOD_S, FakeEnergyCounter


@dataclass
class StepSample:
    """What one step's run left for the profiler: boundary times (partition starts, in the
    energy counter's time base) and energy-counter reads ``(time_s, mj)``."""

    boundary_s: list[float]
    reads: list[tuple[float, int]] = field(default_factory=list)
    end_s: float | None = None


class FakeGpuDevice:
    """A GPU that is the simulator: ``preset`` (h100-sxm, a100-sxm, a40); ``may_lock_clocks``
    False plays a machine without permission to lock clocks (predicted mode, dry-run)."""

    kind = "fake-gpu"
    source = "fake-gpu"

    def __init__(self, preset: str = "h100-sxm", *, may_lock_clocks: bool = True,
                 update_period_s: float = DEFAULT_UPDATE_PERIOD_S,
                 noise_rel: float = DEFAULT_NOISE_REL, seed: int = 0):
        from ..base import Capabilities  # noqa: PLC0415
        from ..sim import SimDevice  # noqa: PLC0415

        self.sim = SimDevice(preset)
        self.preset = self.sim.preset
        self.facts: DeviceFacts = self.sim.facts
        self.may_lock_clocks = may_lock_clocks
        self.capabilities = Capabilities(simulated=False, clock_control=may_lock_clocks,
                                         energy_source="measured",
                                         switch_latency_s=self.preset.switch_latency_s,
                                         needs_step=True)
        self._backend = None
        self.why = ("fake GPU: clocks lockable (simulated backend)" if may_lock_clocks else
                    "fake GPU played without permission to lock clocks")
        self.counter = FakeEnergyCounter(update_period_s, noise_rel, self.preset.idle_power_w,
                                         seed)
        self.op_trace = None            # the step's kernels as the op-level tracer derives them
        self._launches: list | None = None
        self._parts: dict = {}
        self._session_t0_s = 0.0
        self.slowdown = 1.0             # tests: a drifted workload runs this much slower
        self.steps_played = 0
        self.last_kernel_durations_s = None

    # ---- Device protocol -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.preset.name} (fake GPU: simulated behind fake CUPTI/NVML)"

    def energy_j(self) -> float:
        return self.counter.read_mj() / 1000.0

    def time_s(self) -> float:
        return self.counter.now_s

    def set_sm_clock(self, freq_mhz: int) -> None:
        self.sim.set_sm_clock(freq_mhz)

    def reset_sm_clock(self) -> None:
        self.sim.reset_sm_clock()

    def energy_counter_mj(self) -> int:
        return self.counter.read_mj()

    # ---- the runtime's view ----------------------------------------------------------------
    def clock_backend(self):
        """The runtime's simulated clock backend (supported clocks, the preset's switch
        latency), or its dry-run backend (never changes a clock) without permission."""
        if self._backend is None:
            from ...runtime.backends import make_backend  # noqa: PLC0415

            clocks = list(self.facts.supported_freqs_mhz)
            if self.may_lock_clocks:
                self._backend = make_backend("sim", supported_mhz=clocks,
                                             default_mhz=self.facts.max_freq_mhz,
                                             switch_latency_s=self.preset.switch_latency_s)
            else:
                self._backend = make_backend("dry-run", supported_mhz=clocks)
        return self._backend

    def session_options(self) -> dict:
        """How a runtime Session drives this GPU: the fake signal path (lockstep: the fake
        device plays each launch in simulated device time) and this device's clock backend."""
        return dict(backend=self.clock_backend(), signal_path="fake-lockstep",
                    handle_signals=False, watchdog=False, auto_wrap=False)

    def session_started(self, session) -> None:
        """A new runtime session's fake device time starts at 0: remember the offset."""
        self._session_t0_s = self.counter.now_s

    # ---- the step ------------------------------------------------------------------------
    def attach(self, op_trace) -> None:
        """The torch ops one training step runs (from the op-level tracer)."""
        gen = self.preset.generation
        self.op_trace = op_trace
        self._launches = []
        for k in op_trace.kernels:
            grid, block = launch_geometry(k, self.preset.sm_count)
            self._launches.append((cuda_kernel_name(k, gen), int(k.stream), grid, block))

    def _partitioning(self, cuts: tuple[int, ...]) -> Partitioning:
        p = self._parts.get(cuts)
        if p is None:
            p = self._parts[cuts] = Partitioning.from_cuts(self.op_trace, list(cuts))
        return p

    def play_step(self, session, schedule=None) -> StepSample:
        """The GPU runs one training step: its kernels are launched through the session's fake
        CUPTI hook and played on the fake device for the time the simulator gives them at the
        clocks the runtime's controller sets; the energy counter integrates their power."""
        if self.op_trace is None:
            raise RuntimeError("fake GPU: attach(op_trace) before playing steps")
        if schedule is not None:
            cuts = tuple(e.start_kernel for e in schedule.entries)
            want = [e.freq_mhz for e in schedule.entries]
        else:
            cuts, want = (0,), [None]
        parts = self._partitioning(cuts)
        current = self.sim._applied_mhz
        freqs = []
        for f in want:
            if f is not None and self.may_lock_clocks:
                current = int(f)
            freqs.append(current)
        res = self.sim.run_iteration(self.op_trace, parts, [(f, NO_OVERLAP) for f in freqs])
        start = np.asarray(res.kernel_start_s, dtype=np.float64) * self.slowdown
        total = res.time_s * self.slowdown
        dur = np.diff(np.append(start, total)).clip(min=0.0)
        self.last_kernel_durations_s = dur      # what CUPTI's activity records would time
        kernels = [SimpleNamespace(name=n, stream=s, grid=g, block=b, duration_s=float(d))
                   for (n, s, g, b), d in zip(self._launches, dur)]
        before = len(session.switch_events())
        session.replay(SimpleNamespace(kernels=kernels), 1)
        events = session.switch_events()[before:]
        # the counter integrates each partition's simulated power over its device time
        t0 = self.counter.now_s
        reads = [(t0, self.counter.read_mj())]
        for t, e in zip(res.partition_time_s, res.partition_energy_j):
            if t > 0:
                self.counter.advance(float(t) * self.slowdown, float(e) / float(t))
            reads.append((self.counter.now_s, self.counter.read_mj()))
        self.steps_played += 1
        # a boundary the runtime's controller acted on was reached when the simulated timeline
        # reached that partition's first kernel (the fake device's write time)
        seen = {ev.partition for ev in events}
        bounds = ([t0 + float(start[c]) if i in seen else None for i, c in enumerate(cuts)]
                  if schedule is not None else [t0])
        return StepSample(bounds, reads, self.counter.now_s)

    def power_ratio(self, cuts, freq_mhz: int) -> np.ndarray | None:
        """Not known to a GPU: the profiler splits measured energy by measured time only."""
        return None


def open_fake_gpu(arg: str = "", *, preset=None, gpu_index: int = 0, **options):
    """The registry's opener: ``fake-gpu`` plays ``preset`` (default GEARSHIFT_FAKE_GPU, then
    GEARSHIFT_SIM_PRESET); GEARSHIFT_FAKE_GPU_LOCK=0 plays a machine that may not lock clocks."""
    import os  # noqa: PLC0415

    from ...config import environment  # noqa: PLC0415

    lock = options.pop("may_lock_clocks", os.environ.get("GEARSHIFT_FAKE_GPU_LOCK", "1") != "0")
    return FakeGpuDevice(preset or os.environ.get("GEARSHIFT_FAKE_GPU") or
                         environment().sim_preset, may_lock_clocks=lock)


__all__ = ["FakeEnergyCounter", "FakeGpuDevice", "StepSample", "cuda_kernel_name",
           "open_fake_gpu"]
