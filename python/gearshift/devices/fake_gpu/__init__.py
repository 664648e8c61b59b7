"""``fake-gpu``: the simulated GPU played behind the lowest native layer.

A CPU machine runs the exact code path of a real GPU (record with the CUPTI launch hook,
profile online with boundary signals and the NVML energy counter, plan, enforce through the
runtime's controller), with the GPU itself replaced at the bottom:

- launches: every training step's kernels (the torch ops the step runs, traced once, named as
  the CUDA libraries name them) go through the runtime's fake CUPTI callbacks, so the launch
  hook records and counts them exactly as on a GPU;
- stream signals: the runtime's fake device (``csrc/signal/fake_gpu.*``, lockstep) performs the
  boundary writes the hook posts, in launch order, and the controller thread acts on them as it
  acts on a real stream's writes;
- NVML: the fake libnvidia-ml (``csrc/fake/fake_nvml.cpp``, loaded by path). Clocks are locked
  by the runtime's real NVML backend (``NvmlBackend``) through it; energy, clocks and names are
  read through ``devices/nvml_query.py`` (pynvml) from it, as on a GPU;
- the GPU's physics: the simulator. The step is played partition by partition: after the
  runtime acted on a partition's boundary, the simulator runs that partition at the clock the
  fake NVML says was locked (the preset's switch latency included) and with the overlap the
  program applied to its collectives (the simulator's dependency-true overlap model: a window
  runs a collective beside the other nanobatch's compute, never beside work that reads it), and
  advances the fake NVML's device time and energy counter by what it spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ...model import NO_OVERLAP, DeviceFacts, Partitioning
from .. import nvml_query
from .names import cuda_kernel_name, launch_geometry
from .nvml import (DEFAULT_NOISE_REL, DEFAULT_UPDATE_PERIOD_S, NVML_ERROR_NO_PERMISSION,
                   FakeNvmlGpu)


@dataclass
class StepSample:
    """What one step's run left for the profiler: boundary times (partition starts, in the
    energy counter's time base) and energy-counter reads ``(time_s, mj)``."""

    boundary_s: list[float]
    reads: list[tuple[float, int]] = field(default_factory=list)
    end_s: float | None = None


class FakeGpuDevice:
    """A GPU that is the simulator: ``preset`` (h100-sxm, a100-sxm, a40; ``switch_latency_s``
    overrides its switch latency); ``may_lock_clocks``
    False plays a machine without permission to lock clocks (the fake NVML refuses locks with
    NVML_ERROR_NO_PERMISSION; like a real GPU without root, the device uses dry-run and the
    online path runs in predicted mode)."""

    kind = "fake-gpu"
    source = "fake-gpu"

    def __init__(self, preset: str = "h100-sxm", *, may_lock_clocks: bool = True,
                 update_period_s: float = DEFAULT_UPDATE_PERIOD_S,
                 noise_rel: float = DEFAULT_NOISE_REL, seed: int = 0,
                 switch_latency_s: float | None = None):
        from ..base import Capabilities  # noqa: PLC0415
        from ..sim import SimDevice  # noqa: PLC0415

        self.sim = SimDevice(preset, switch_latency_s=switch_latency_s)
        self.preset = self.sim.preset
        self.nvml = FakeNvmlGpu(self.preset, update_period_s=update_period_s,
                                noise_rel=noise_rel, seed=seed)
        self.index = self.nvml.index          # this GPU's NVML index in this process
        self.nvml_path = self.nvml.path
        if not may_lock_clocks:
            for fn in ("nvmlDeviceSetGpuLockedClocks", "nvmlDeviceResetGpuLockedClocks"):
                self.nvml.set_return(fn, NVML_ERROR_NO_PERMISSION)
        self.may_lock_clocks = may_lock_clocks
        self.why = ("fake GPU: clocks lockable (NVML backend on the fake libnvidia-ml)"
                    if may_lock_clocks else
                    "fake GPU played without permission to lock clocks")
        # what the GPU is, read through NVML as a real GPU's is: it must be the preset
        info = nvml_query.query(self.nvml_path, may_lock=(may_lock_clocks, self.why))
        gpu = info.gpus[self.index]
        sim_facts: DeviceFacts = self.sim.facts
        if gpu.name != sim_facts.name or tuple(gpu.supported_sm_mhz) != tuple(
                sorted(sim_facts.supported_freqs_mhz, reverse=True)):
            raise RuntimeError(f"fake NVML reports {gpu.name} with {len(gpu.supported_sm_mhz)} "
                               f"clocks, not the preset {sim_facts.name}")
        self.facts = sim_facts
        self.nvml_info = gpu
        self.nvml_handle = nvml_query.handle(self.index, self.nvml_path)
        self.capabilities = Capabilities(simulated=False, clock_control=may_lock_clocks,
                                         energy_source="measured",
                                         switch_latency_s=self.preset.switch_latency_s,
                                         needs_step=True)
        self._backend = None
        self.op_trace = None            # the step's kernels as the op-level tracer derives them
        self._launches: list | None = None
        self._parts: dict = {}
        self._memo: dict = {}
        self._durations: np.ndarray | None = None
        self._session_t0_s = 0.0
        self.slowdown = 1.0             # tests: a drifted workload runs this much slower
        self.steps_played = 0
        self.last_kernel_durations_s = None

    # ---- Device protocol -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.preset.name} (fake GPU: simulated behind fake CUPTI/NVML)"

    def energy_counter_mj(self) -> int:
        """nvmlDeviceGetTotalEnergyConsumption through the NVML read path (pynvml)."""
        return nvml_query.energy_mj(self.nvml_handle, self.nvml_path)

    def energy_j(self) -> float:
        return self.energy_counter_mj() / 1000.0

    def time_s(self) -> float:
        """The fake GPU's device time (the base of its energy counter's updates)."""
        return self.nvml.now_s

    def sm_clock_mhz(self) -> int:
        """nvmlDeviceGetClockInfo(SM): the clock in force now."""
        nv = nvml_query.library(self.nvml_path)
        return int(nv.nvmlDeviceGetClockInfo(self.nvml_handle, nv.NVML_CLOCK_SM))

    def set_sm_clock(self, freq_mhz: int) -> None:
        self.clock_backend().lock_sm_mhz(self.index, int(freq_mhz))

    def reset_sm_clock(self) -> None:
        self.clock_backend().reset(self.index)

    # ---- the runtime's view ----------------------------------------------------------------
    def clock_backend(self):
        """The runtime's NVML backend on the fake libnvidia-ml, or its dry-run backend (never
        changes a clock) without permission."""
        if self._backend is None:
            from ...runtime.backends import make_backend  # noqa: PLC0415

            if self.may_lock_clocks:
                self._backend = make_backend("nvml", gpu=self.index, library=self.nvml_path)
            else:
                self._backend = make_backend("dry-run", gpu=self.index,
                                             supported_mhz=list(self.facts.supported_freqs_mhz))
        return self._backend

    def clock_permission_lost(self, reason: str = "") -> None:
        """NVML refused a lock: from now on this GPU is driven in dry-run (as a GPU without
        root is), and the online path predicts instead of measuring."""
        from ..base import Capabilities  # noqa: PLC0415

        self.may_lock_clocks = False
        self._backend = None
        self.why = f"fake GPU: NVML refused to lock clocks ({reason})" if reason else self.why
        self.capabilities = Capabilities(simulated=False, clock_control=False,
                                         energy_source="measured",
                                         switch_latency_s=self.preset.switch_latency_s,
                                         needs_step=True)

    def session_options(self) -> dict:
        """How a runtime Session drives this GPU: the fake signal path (lockstep: the fake
        device performs each boundary write in launch order) and this device's clock backend."""
        return dict(backend=self.clock_backend(), gpu=self.index, signal_path="fake-lockstep",
                    handle_signals=False, watchdog=False, auto_wrap=False)

    def session_started(self, session) -> None:
        """A new runtime session's fake device time starts at 0: remember the offset."""
        self._session_t0_s = self.nvml.now_s

    # ---- the step ------------------------------------------------------------------------
    def attach(self, op_trace) -> None:
        """The torch ops one training step runs (from the op-level tracer)."""
        gen = self.preset.generation
        self.op_trace = op_trace
        self._launches = []
        for k in op_trace.kernels:
            grid, block = launch_geometry(k, self.preset.sm_count)
            self._launches.append((cuda_kernel_name(k, gen), int(k.stream), grid, block))
        self._parts, self._memo, self._durations = {}, {}, None

    def _partitioning(self, cuts: tuple[int, ...]) -> Partitioning:
        p = self._parts.get(cuts)
        if p is None:
            p = self._parts[cuts] = Partitioning.from_cuts(self.op_trace, list(cuts))
        return p

    def _partition_run(self, cuts, i: int, applied: int, requested: int, latency_s: float,
                       overlaps: tuple = ()):
        """Partition ``i`` of the step as the simulator runs it when ``applied`` is the clock in
        force at its start and ``requested`` (locked, landing ``latency_s`` after its start)
        the clock asked for, its collectives placed as ``overlaps[i]`` says (default the
        framework's serial placement): (time s, energy J, kernel starts from its start)."""
        if requested == applied:
            latency_s = 0.0
        ov = overlaps[i] if overlaps else NO_OVERLAP
        key = (cuts, i, applied, requested, round(latency_s, 6), ov)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        parts = self._partitioning(cuts)
        n = len(parts)
        freqs = [applied] * i + [requested] * (n - i)
        # partitions are independent under any overlap (a window never reaches past its
        # partition), so the others' placements do not change partition i
        ovs = [NO_OVERLAP] * n
        ovs[i] = ov
        res = self.sim.timeline(self.op_trace, parts).run(
            np.asarray(freqs, dtype=np.int64), ovs, initial_freq_mhz=applied,
            switch_latency_s=latency_s, power_cap=self.sim.power_cap)
        p = parts.partitions[i]
        offset = float(np.sum(res.partition_time_s[:i]))
        starts = np.asarray(res.kernel_start_s[p.start:p.end], dtype=np.float64) - offset
        hit = (float(res.partition_time_s[i]), float(res.partition_energy_j[i]), starts)
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[key] = hit
        return hit

    def play_step(self, session, schedule=None, overlaps=None) -> StepSample:
        """The GPU runs one training step, partition by partition: the partition's kernels are
        launched through the session's fake CUPTI hook (the runtime's controller locks the
        partition's clock through the NVML backend at its boundary), then the simulator runs
        the partition at the clock the fake NVML was asked for and in force, and the fake
        NVML's device time and energy counter advance by what it spent.

        ``overlaps``: per partition of ``schedule``, the placement the program really gave
        its collectives (what the overlap pass applied); None: the framework's own (serial)
        placement, as a step the overlap pass did not transform runs. A schedule's overlap
        column alone is never played: only what ran."""
        if self.op_trace is None:
            raise RuntimeError("fake GPU: attach(op_trace) before playing steps")
        cuts = (tuple(e.start_kernel for e in schedule.entries) if schedule is not None
                else (0,))
        parts = self._partitioning(cuts)
        ovs = tuple(overlaps) if overlaps is not None else ()
        if ovs and len(ovs) != len(parts):
            raise ValueError(f"{len(ovs)} overlaps for {len(parts)} partitions")
        nv = self.nvml
        n_kernels = len(self._launches)
        if self._durations is None or len(self._durations) != n_kernels:
            self._durations = np.zeros(n_kernels)
        before = session.switch_event_count()
        t0 = nv.now_s
        reads = [(t0, self.energy_counter_mj())]
        starts_s, step_starts = [], np.zeros(n_kernels)
        for i, p in enumerate(parts.partitions):
            t_i = nv.now_s
            starts_s.append(t_i)
            applied = nv.applied_mhz()          # in force as the partition starts
            # the GPU reaches the partition: its launches pass the hook, and the controller
            # acts on the boundary (locks through NVML) before the fake device goes on
            kernels = [SimpleNamespace(name=nm, stream=st, grid=g, block=b, duration_s=float(d))
                       for (nm, st, g, b), d in zip(self._launches[p.start:p.end],
                                                    self._durations[p.start:p.end])]
            session.replay(SimpleNamespace(kernels=kernels), 1, events=False)
            requested = nv.requested_mhz()
            last = nv.last_lock()               # when that clock was asked for
            landing_s = (last[0] + self.preset.switch_latency_s - t_i) if last else 0.0
            t, e, local = self._partition_run(cuts, i, applied, requested,
                                              max(0.0, landing_s), ovs)
            nv.advance(t * self.slowdown, e * self.slowdown)
            step_starts[p.start:p.end] = (t_i - t0) + local * self.slowdown
            reads.append((nv.now_s, self.energy_counter_mj()))
        total = nv.now_s - t0
        dur = np.diff(np.append(step_starts, total)).clip(min=0.0)
        self._durations = dur
        self.last_kernel_durations_s = dur      # what CUPTI's activity records would time
        self.steps_played += 1
        # a boundary the runtime's controller acted on was reached when the device reached
        # that partition's first kernel
        seen = {ev.partition for ev in session.switch_events(before)}
        bounds = ([s if i in seen else None for i, s in enumerate(starts_s)]
                  if schedule is not None else [t0])
        return StepSample(bounds, reads, nv.now_s)

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


__all__ = ["FakeGpuDevice", "FakeNvmlGpu", "StepSample", "cuda_kernel_name", "open_fake_gpu"]
