"""Online profiling inside the training loop: which clock the next steps run, and what they cost.

Each *round* runs every partition at one SM clock for consecutive training steps (the first
``warmup`` steps let the clock switch settle). Partition times come from the runtime's boundary
signals (each step's partition starts, the next step's first start closing its last partition).
Energy comes from NVML's total-energy counter, which is published only every few tens of ms in
whole mJ: the reads are windowed between the first and the last counter update seen in the
round, whose times are bracketed by the reads around them, so the window's energy is exact to
the counter's resolution and its duration to the bracket widths. A round ends when that error
bound is <= ``target_error`` (1 %): how many steps that takes is reported per option.

A step's energy at a clock is the window's average power times the step's measured time; it
is split over partitions by their measured times (a counter this coarse cannot tell two
partitions of one step apart), so ``profile.extra["energy_split"]`` says "time share".

Which clocks run: a sample-efficient search measures every third candidate clock (and the
top one), then the unmeasured neighbours of each partition's least-energy clock, and
interpolates the rest linearly in the clock; ``options_measured`` / ``options_total`` count
(partition, clock) options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import NO_OVERLAP, Profile, ProfileEntry

TARGET_ERROR = 0.01
MAX_ROUND_STEPS = 4000


def window_power_w(reads: list[tuple[float, int]], resolution_mj: float = 1.0):
    """(average power W, relative error bound) of the window between the first and last
    counter updates seen in ``reads`` (time-ordered ``(t_s, mj)``); (None, inf) without two."""
    if len(reads) < 3:
        return None, float("inf")
    t = np.array([r[0] for r in reads], dtype=np.float64)
    v = np.array([r[1] for r in reads], dtype=np.float64)
    changed = np.nonzero(np.diff(v) != 0)[0] + 1
    if len(changed) < 2:
        return None, float("inf")
    a, b = int(changed[0]), int(changed[-1])
    tau_a = (t[a - 1] + t[a]) / 2
    tau_b = (t[b - 1] + t[b]) / 2
    dt, de_mj = tau_b - tau_a, v[b] - v[a]
    if dt <= 0 or de_mj <= 0:
        return None, float("inf")
    bracket = ((t[a] - t[a - 1]) + (t[b] - t[b - 1])) / 2
    err = 2 * resolution_mj / de_mj + bracket / dt
    return de_mj / 1000.0 / dt, float(err)


@dataclass
class Round:
    """One clock's measurement: steps' partition times and the counter reads."""

    freq_mhz: int
    num_partitions: int
    warmup: int = 1
    steps: int = 0
    times: list[np.ndarray] = field(default_factory=list)
    reads: list[tuple[float, int]] = field(default_factory=list)
    _prev: object = None

    def add(self, sample) -> None:
        """A step's StepSample (boundary times, reads, and its end when the device knows it;
        otherwise the next step's first boundary ends it)."""
        self.steps += 1
        if self.steps <= self.warmup:
            self._prev = None
            return
        if sample.end_s is not None:
            self._close(sample, sample.end_s)
        elif self._prev is not None and sample.boundary_s:
            self._close(self._prev, sample.boundary_s[0])
        self._prev = sample
        self.reads.extend(r for r in sample.reads if not self.reads or r[0] >= self.reads[-1][0])

    def _close(self, sample, end_s) -> None:
        b = list(sample.boundary_s)
        if end_s is None or len(b) != self.num_partitions or any(x is None for x in b):
            return
        d = np.diff(np.asarray(b + [end_s], dtype=np.float64))
        if np.all(d >= 0):
            self.times.append(d)

    def estimate(self) -> tuple[np.ndarray | None, np.ndarray | None, float]:
        """(partition times s, partition energies J, relative energy error bound)."""
        if not self.times:
            return None, None, float("inf")
        t = np.mean(self.times, axis=0)
        power, err = window_power_w(self.reads)
        if power is None:
            return t, None, err
        step_e = power * float(t.sum())
        share = t / t.sum() if t.sum() > 0 else np.full_like(t, 1 / len(t))
        return t, step_e * share, err

    @property
    def done(self) -> bool:
        _, e, err = self.estimate()
        return (e is not None and err <= TARGET_ERROR) or self.steps >= MAX_ROUND_STEPS


class ClockSearch:
    """Which clocks to measure: coarse grid first, then the neighbours of each partition's
    least-energy clock; the rest interpolated."""

    def __init__(self, candidates: list[int], num_partitions: int, only_top: bool = False):
        self.candidates = sorted(candidates, reverse=True)
        self.num_partitions = num_partitions
        self.measured: dict[int, tuple[np.ndarray, np.ndarray, float, int]] = {}
        self.only_top = only_top
        coarse = self.candidates[::3] + [self.candidates[-1]]
        self._queue = [self.candidates[0]] if only_top else list(dict.fromkeys(coarse))

    def next_clock(self) -> int | None:
        while self._queue and self._queue[0] in self.measured:
            self._queue.pop(0)
        if not self._queue and not self.only_top:
            self._refine()
        return self._queue[0] if self._queue else None

    def record(self, freq_mhz: int, times, energies, err: float, steps: int) -> None:
        self.measured[freq_mhz] = (times, energies, err, steps)

    def _refine(self) -> None:
        fs = [f for f in self.candidates if f in self.measured]
        if not fs:
            return
        energy = np.array([self.measured[f][1] for f in fs])          # (F, P)
        want = set()
        for p in range(self.num_partitions):
            best = fs[int(np.argmin(energy[:, p]))]
            i = self.candidates.index(best)
            for j in (i - 1, i + 1):
                if 0 <= j < len(self.candidates) and self.candidates[j] not in self.measured:
                    want.add(self.candidates[j])
        self._queue = sorted(want, reverse=True)

    @property
    def options_total(self) -> int:
        return len(self.candidates) * self.num_partitions

    @property
    def options_measured(self) -> int:
        return len(self.measured) * self.num_partitions

    def steps_per_option(self) -> dict[int, int]:
        return {f: m[3] for f, m in sorted(self.measured.items(), reverse=True)}

    def profile(self, device_facts, partitioning_signature: str, source: str,
                extra: dict | None = None, predict=None) -> Profile:
        """Every candidate clock: measured, interpolated between measured ones, or (with
        ``predict(f) -> (times, energies)``) predicted from the fitted response."""
        fs = sorted(self.measured)
        times = np.array([self.measured[f][0] for f in fs])
        energies = np.array([self.measured[f][1] for f in fs])
        entries = []
        how = {}
        for f in self.candidates:
            if f in self.measured:
                t, e = self.measured[f][0], self.measured[f][1]
                how[f] = "measured"
            elif predict is not None:
                t, e = predict(f)
                how[f] = "predicted"
            else:
                t = np.array([np.interp(f, fs, times[:, p]) for p in range(times.shape[1])])
                e = np.array([np.interp(f, fs, energies[:, p]) for p in range(times.shape[1])])
                how[f] = "interpolated"
            for p in range(self.num_partitions):
                entries.append(ProfileEntry(p, int(f), NO_OVERLAP, float(t[p]), float(e[p])))
        meta = {"freqs_mhz": self.candidates, "option_source": {str(k): v for k, v in how.items()},
                "steps_per_option": {str(k): v for k, v in self.steps_per_option().items()},
                "energy_error_bound": {str(f): m[2] for f, m in self.measured.items()},
                "energy_split": "time share", **(extra or {})}
        return Profile(device_facts, entries, self.num_partitions, partitioning_signature,
                       source=source, energy_scope="gpu", extra=meta).validate()
