"""The fake GPU's NVML total-energy counter: what ``nvmlDeviceGetTotalEnergyConsumption`` returns.

The counter integrates the simulated GPU's power over device time, but like the real one it is
published only every ``update_period_s`` (a read returns the value of the last update), in
whole millijoules, and each update carries sensor noise. Readers therefore see a stale,
quantised, noisy integral, and must window their reads to get <= 1 % error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# NVML updates the counter every few tens of ms on A100/H100 class boards (assumed order of
# magnitude; the reader below measures the period it sees rather than trusting this value).
DEFAULT_UPDATE_PERIOD_S = 0.020
DEFAULT_NOISE_REL = 0.002       # relative sensor noise of one update's increment (assumed)


@dataclass
class _Segment:
    t0_s: float
    t1_s: float
    power_w: float


class FakeEnergyCounter:
    """Device-time energy integral, published every ``update_period_s`` in whole mJ, noisy."""

    def __init__(self, update_period_s: float = DEFAULT_UPDATE_PERIOD_S,
                 noise_rel: float = DEFAULT_NOISE_REL, idle_power_w: float = 60.0,
                 seed: int = 0):
        if update_period_s <= 0:
            raise ValueError("update_period_s must be > 0")
        self.update_period_s = float(update_period_s)
        self.noise_rel = float(noise_rel)
        self.idle_power_w = float(idle_power_w)
        self._rng = np.random.default_rng(seed)
        self._segments: list[_Segment] = []
        self._now_s = 0.0
        self._exact_j = 0.0               # the true integral up to _now_s
        self._published_mj = 0            # value of the last update
        self._published_t_s = 0.0         # device time of the last update

    @property
    def now_s(self) -> float:
        return self._now_s

    def advance(self, duration_s: float, power_w: float) -> None:
        """The device ran ``duration_s`` at an average ``power_w`` (in device-time order)."""
        if duration_s <= 0:
            return
        t0, t1 = self._now_s, self._now_s + duration_s
        # publish every update that falls inside this segment
        while self._published_t_s + self.update_period_s <= t1:
            tick = self._published_t_s + self.update_period_s
            exact_at_tick = self._exact_j + max(0.0, tick - t0) * power_w
            increment = exact_at_tick - self._published_mj / 1000.0
            # noise on what this update adds; the next update measures from the true integral
            # again, so the error does not accumulate (the counter stays monotone)
            noise = self._rng.normal(0.0, self.noise_rel * max(increment, 0.0))
            value_j = self._published_mj / 1000.0 + max(0.0, increment + noise)
            self._published_mj = max(self._published_mj, int(np.floor(value_j * 1000.0)))
            self._published_t_s = tick
        self._exact_j += duration_s * power_w
        self._now_s = t1

    def idle(self, duration_s: float) -> None:
        self.advance(duration_s, self.idle_power_w)

    def read_mj(self) -> int:
        """nvmlDeviceGetTotalEnergyConsumption: mJ since the driver loaded, as last published."""
        return int(self._published_mj)

    def exact_j(self) -> float:
        """The true integral (for tests: what a perfect counter would read now)."""
        return self._exact_j
