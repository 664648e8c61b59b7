"""Where a training iteration starts and ends, without touching the training loop.

Two signals: the kernel-name sequence the runtime's launch hook sees (an iteration is the
shortest block that keeps repeating), and, where only power samples exist, the power trace
itself, whose dominant period is the iteration time (GPOEO). Energy per iteration then comes
from differencing an energy counter, which may wrap or jump backwards: handled here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError, DeviceError, TraceError
from ..model.trace import sequence_signature


# ---------------------------------------------------------------- kernel-signature repeats
@dataclass(frozen=True)
class KernelPeriod:
    period: int            # kernels per iteration
    offset: int            # index of the first kernel of the first full iteration
    repeats: int           # full iterations seen from ``offset`` on
    match: float           # fraction of kernels equal to the one a period later
    signature: str         # sequence_signature of one iteration's names

    def boundaries(self, n: int) -> list[int]:
        """Kernel indices at which an iteration starts, within a sequence of ``n`` kernels."""
        return list(range(self.offset, n, self.period))


def _codes(names: Sequence[str]):
    import numpy as np

    table: dict[str, int] = {}
    return np.fromiter((table.setdefault(n, len(table)) for n in names), dtype=np.int64,
                       count=len(names))


def kernel_period(names: Sequence[str], min_match: float = 0.95, min_repeats: int = 2,
                  max_period: int | None = None) -> KernelPeriod:
    """The shortest repeating block of a kernel-name sequence.

    ``min_match`` tolerates a few kernels that differ between iterations (a data-dependent
    kernel choice, an occasional extra copy). Candidate periods are the gaps between
    occurrences of the rarest repeated names (every period, for short sequences), so the
    search stays cheap on long ones.
    """
    import numpy as np

    x = _codes(names)
    n = len(x)
    if n < 2 * min_repeats:
        raise TraceError(f"only {n} kernels: too few to find a repeating iteration",
                         f"record at least {min_repeats} iterations")
    max_period = n // min_repeats if max_period is None else min(max_period, n // min_repeats)
    counts = np.bincount(x)
    repeated = np.flatnonzero(counts >= min_repeats)
    if repeated.size == 0:
        raise TraceError("no kernel name repeats: the sequence has no iteration structure",
                         "record several iterations, not one")
    # Several rare names as anchors: a warm-up kernel that repeats only at the start would
    # otherwise offer nothing but its own short gaps.
    cands: set[int] = set()
    for anchor in repeated[np.argsort(counts[repeated], kind="stable")][:4]:
        occ = np.flatnonzero(x == anchor)[:64]
        cands |= {int(b - a) for i, a in enumerate(occ) for b in occ[i + 1:]
                  if 0 < b - a <= max_period}
    if n * max_period <= 200_000:
        cands |= set(range(1, max_period + 1))      # small enough to try every period
    cands = sorted(cands)
    for p in cands:
        eq = x[:-p] == x[p:]
        # the periodic regime may start after warm-up kernels: score from its first match run
        first = _first_stable(eq, p)
        if first is None:
            continue
        tail = eq[first:]
        frac = float(tail.mean()) if tail.size else 0.0
        reps = (n - first) // p
        if frac >= min_match and reps >= min_repeats:
            sig = sequence_signature(names[first:first + p])
            return KernelPeriod(p, first, reps, frac, sig)
    raise TraceError(f"no period of at most {max_period} kernels repeats {min_repeats} times "
                     f"with {min_match:.0%} of kernels equal",
                     "record more iterations, or lower min_match if iterations vary")


def _first_stable(eq, p: int):
    """First index where a full period of kernels equals the next period (warm-up skipped)."""
    import numpy as np

    if eq.size < p:
        return None
    c = np.concatenate([[0], np.cumsum(eq, dtype=np.int64)])
    window = c[p:] - c[:-p]                      # matches in each run of p comparisons
    good = np.flatnonzero(window >= math.ceil(0.9 * p))
    if not good.size:
        return None
    # the window tolerates odd kernels; its leading mismatches are warm-up, not iteration
    first = int(good[0])
    ahead = np.flatnonzero(eq[first:first + p])
    return first + int(ahead[0]) if ahead.size else first


class IterationCounter:
    """Streaming: counts iterations of a known kernel signature as kernels are launched.

    ``push(name)`` returns True when ``name`` starts a new iteration. If the sequence stops
    matching (more than ``tolerance`` of an iteration's kernels differ), ``diverged`` is set so
    the caller can re-detect the period: the model or its inputs changed shape.
    """

    def __init__(self, iteration_names: Sequence[str], tolerance: float = 0.05):
        if not iteration_names:
            raise ConfigError("an iteration needs at least one kernel",
                              "pass the names of one iteration (kernel_period gives them)")
        self.names = list(iteration_names)
        self.tolerance = tolerance
        self.position = 0
        self.iterations = 0
        self._mismatches = 0
        self.diverged = False

    def push(self, name: str) -> bool:
        starts = self.position == 0
        if name != self.names[self.position]:
            self._mismatches += 1
            if self._mismatches > self.tolerance * len(self.names):
                self.diverged = True
        self.position += 1
        if self.position == len(self.names):
            self.position = 0
            self.iterations += 1
            self._mismatches = 0
        return starts


# ---------------------------------------------------------------- power-trace period
@dataclass(frozen=True)
class PowerPeriod:
    period_s: float
    confidence: float      # normalised autocorrelation at the period (1 = perfectly periodic)


def power_period(power_w: Sequence[float], sample_interval_s: float,
                 min_period_s: float | None = None, max_period_s: float | None = None,
                 min_confidence: float = 0.25) -> PowerPeriod:
    """The iteration time from power samples alone (GPOEO-style period detection).

    Autocorrelation by FFT of the mean-removed trace; the period is the shortest lag whose
    peak reaches 85% of the highest peak, so multiples of the period never win over it, then
    refined to sub-sample precision by a parabola through the peak. ``confidence`` is the
    autocorrelation there (biased estimate, so it shrinks slightly with the period's length).
    """
    import numpy as np

    x = np.asarray(power_w, dtype=float)
    if x.ndim != 1 or x.size < 8 or not np.all(np.isfinite(x)):
        raise TraceError(f"power trace of {x.size} samples (finite 1-D needed, at least 8)",
                         "sample power for several iterations, dropping NaN readings")
    if not sample_interval_s > 0:
        raise ConfigError(f"sample interval must be positive, got {sample_interval_s}",
                          "pass the time between power samples in seconds")
    x = x - x.mean()
    n = x.size
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    if acf[0] <= 0:
        raise TraceError("the power trace is constant: no iteration structure",
                         "sample while the job trains, at a rate above its iteration rate")
    # Biased estimate on purpose: it decays with lag, so the fundamental beats its multiples
    # and long lags (few overlapping samples) cannot produce spurious high peaks.
    acf = acf / acf[0]
    lo = max(1, int(math.floor((min_period_s or 2 * sample_interval_s) / sample_interval_s)))
    hi = min(n // 2, int(math.ceil((max_period_s or n * sample_interval_s / 2)
                                   / sample_interval_s)))
    if hi <= lo + 1:
        raise TraceError("the power trace is too short for the period range asked",
                         "record at least two iterations' worth of samples")
    seg = acf[lo:hi + 1]
    # Before its first zero crossing the autocorrelation is still decaying from lag 0: noise
    # ripples there are not periods (a step-shaped power profile decays slowly).
    below = np.flatnonzero(seg < 0)
    start = int(below[0]) if below.size else 1
    peaks = [i for i in range(max(1, start), seg.size - 1)
             if seg[i] >= seg[i - 1] and seg[i] > seg[i + 1]]
    if not peaks:
        raise TraceError("no periodic pattern in the power trace",
                         "widen the period range or sample for longer")
    top = max(seg[i] for i in peaks)
    k = next(i for i in peaks if seg[i] >= 0.85 * top)
    a, b, c = seg[k - 1], seg[k], seg[k + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
    lag = lo + k + shift
    if b < min_confidence:
        raise TraceError(f"power trace periodicity is weak (autocorrelation {b:.2f} < "
                         f"{min_confidence})", "sample for longer or at a higher rate")
    return PowerPeriod(lag * sample_interval_s, float(b))


# ---------------------------------------------------------------- energy counters
def energy_delta_j(start_j: float, end_j: float, wrap_j: float | None = None,
                   glitch_j: float = 0.0) -> float:
    """Energy between two readings of a counter that should only grow.

    A counter with a known modulus ``wrap_j`` (e.g. a 32-bit RAPL register) that reads lower
    has wrapped once. A drop within ``glitch_j`` is read jitter and counts as zero. Anything
    else is a reset: the energy of that window is unknowable, so it is an error, not a guess.
    """
    d = end_j - start_j
    if d >= 0:
        return d
    if -d <= glitch_j:
        return 0.0
    if wrap_j is not None and wrap_j > 0 and -d <= wrap_j:
        return d + wrap_j
    raise DeviceError(
        f"energy counter went backwards from {start_j:.3f} J to {end_j:.3f} J"
        + ("" if wrap_j is None else f" by more than its wrap of {wrap_j:.3f} J"),
        "the counter was reset (driver reload, GPU reset) or wrapped: pass wrap_j for a "
        "wrapping counter, and drop this window's measurement")


def unwrap_energy(readings_j: Sequence[float], wrap_j: float | None = None,
                  glitch_j: float = 0.0):
    """Cumulative energy from a series of counter readings (starts at 0, never decreases)."""
    import numpy as np

    r = np.asarray(readings_j, dtype=float)
    out = np.zeros(r.size)
    for i in range(1, r.size):
        try:
            out[i] = out[i - 1] + energy_delta_j(r[i - 1], r[i], wrap_j, glitch_j)
        except DeviceError as exc:
            raise DeviceError(f"reading {i}: {exc.problem}", exc.fix) from None
    return out
