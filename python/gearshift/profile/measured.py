"""Profile on a real GPU: lock each clock, run training steps, time partitions, split energy.

Per option the SM clock is locked (through the Device, so root, CAP_SYS_ADMIN or the daemon),
a few warm-up steps run, then ``iterations`` measured steps. Partition times come from the
boundary marks the caller records in each step (host-synchronised, ``time.monotonic`` base,
e.g. CUDA events read back by the runtime). NVML's energy counter gives each step's energy
exactly but updates too coarsely to split it; a power sampler running alongside apportions it
to partitions, and the split is rescaled so that it sums to the counter's figure.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np

from ..errors import DeviceError
from ..model import NO_OVERLAP, Overlap, ProfileEntry
from .options import FRAMEWORK_OVERLAP
from .progress import Progress

# One step's partition bounds: P+1 increasing timestamps (partition starts, then the step's end)
Marks = Sequence[float]


def attribute_energy(marks: Sequence[Marks], sample_t: np.ndarray, sample_w: np.ndarray,
                     total_energy_j: float) -> np.ndarray:
    """Split ``total_energy_j`` over partitions by the sampled power inside each partition's
    intervals (over all steps); falls back to time shares where no sample lands."""
    m = np.asarray(marks, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2 or np.any(np.diff(m, axis=1) < 0):
        raise DeviceError("partition marks must be P+1 increasing timestamps per step",
                          "record a mark at every partition start and at the step's end")
    dur = np.diff(m, axis=1).sum(axis=0)
    if len(sample_t) >= 2:
        t = np.asarray(sample_t, dtype=np.float64)
        w = np.asarray(sample_w, dtype=np.float64)
        order = np.argsort(t)
        t, w = t[order], w[order]
        # energy integral E(t) of the piecewise-linear power, evaluated at every mark
        cum = np.concatenate([[0.0], np.cumsum(np.diff(t) * (w[1:] + w[:-1]) / 2)])
        at = np.interp(m, t, cum)
        split = np.diff(at, axis=1).sum(axis=0)
    else:
        split = np.zeros_like(dur)
    if split.sum() <= 0:
        split = dur
    return total_energy_j * split / split.sum()


class PowerSampler:
    """Samples one GPU's board power (NVML) every ``interval_s`` on a daemon thread."""

    def __init__(self, handle, nvml, interval_s: float = 0.005):
        self.handle, self.nvml, self.interval_s = handle, nvml, interval_s
        self.t: list[float] = []
        self.w: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gearshift-power", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            self.t.append(time.monotonic())
            self.w.append(self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)
            self._stop.wait(self.interval_s)


def profile_measured(num_partitions: int, has_comm: Sequence[bool], device, freqs: list[int],
                     step: Callable[[], None], partition_marks: Callable[[], Marks],
                     progress: Progress, *, iterations: int = 5, warmup: int = 2,
                     sampler_factory: Callable[[], PowerSampler] | None = None) -> list[ProfileEntry]:
    """Options are the clocks only: the step runs its framework's own overlap, recorded as
    ``serial`` on partitions with communication (changing placement needs the runtime's
    overlap control, which this path does not drive)."""
    entries: list[ProfileEntry] = []
    progress.start(len(freqs), f"measuring {num_partitions} partitions ({len(freqs)} clocks)")
    framework = Overlap.parse(FRAMEWORK_OVERLAP)
    try:
        for f in freqs:
            device.set_sm_clock(f)
            for _ in range(warmup):
                step()
            marks: list[Marks] = []
            e0 = device.energy_j()
            sampler = sampler_factory() if sampler_factory else None
            if sampler:
                sampler.__enter__()
            try:
                for _ in range(iterations):
                    step()
                    mk = list(partition_marks())
                    if len(mk) != num_partitions + 1:
                        raise DeviceError(f"the step recorded {len(mk)} marks for "
                                          f"{num_partitions} partitions",
                                          "record P+1 marks: every partition start and the end")
                    marks.append(mk)
            finally:
                if sampler:
                    sampler.__exit__(None, None, None)
            energy = device.energy_j() - e0
            split = attribute_energy(marks, np.array(sampler.t if sampler else []),
                                     np.array(sampler.w if sampler else []), energy)
            times = np.diff(np.asarray(marks), axis=1).mean(axis=0)
            for p in range(num_partitions):
                entries.append(ProfileEntry(p, f, framework if has_comm[p] else NO_OVERLAP,
                                            float(times[p]), float(split[p] / iterations)))
            progress.advance()
    finally:
        device.reset_sm_clock()
        progress.stop()
    return entries
