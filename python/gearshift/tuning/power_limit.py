"""One GPU power limit for the whole job, chosen online under the Zeus time-energy cost.

The cost of running at a limit is ``eta * E + (1 - eta) * P_max * T`` (Zeus, NSDI '23): ``eta``
trades energy against time, and ``P_max`` (the highest limit, times the number of GPUs) turns
time into joules so both terms share a unit. Limits are explored from the highest down, one
measurement window each, and exploration stops early once no lower limit can beat the best one.

Why that stop is sound: lowering the power limit does not make an iteration faster, so every
limit below the current one takes at least the current time ``T``. Its cost is then at least
``(1 - eta) * P_max * T`` whatever its energy; once that bound exceeds the best cost measured,
the rest of the range cannot win. Measured times are noisy (a lower limit occasionally measures
a few percent faster), so the bound is loosened by ``time_tolerance``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError, FormatError
from ..objective import check_eta as _check_eta
from ..objective import zeus_cost


@dataclass(frozen=True)
class PowerLimitMeasurement:
    """Time and energy of one measurement window (the same work at every limit)."""

    power_limit_w: int
    time_s: float
    energy_j: float

    @property
    def average_power_w(self) -> float:
        return self.energy_j / self.time_s


@dataclass
class PowerLimitOptimizer:
    """Explores limits high to low, one measurement each, then holds the cheapest.

    Drive it from a training loop: ask ``next_limit()``; if it is not None, set that limit,
    measure a window of iterations and ``observe()`` it; once ``next_limit()`` returns None,
    ``chosen_limit_w`` is the limit to keep. ``warmup_iterations``/``profile_iterations``
    are what a loop driver should spend per limit (Zeus uses 10 and 40).
    """

    power_limits_w: Sequence[int]
    eta: float = 0.5
    world_size: int = 1
    time_tolerance: float = 0.10
    early_stop: bool = True
    warmup_iterations: int = 10
    profile_iterations: int = 40
    measurements: list[PowerLimitMeasurement] = field(default_factory=list)
    _stopped: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.eta = _check_eta(self.eta)
        limits = sorted({int(p) for p in self.power_limits_w}, reverse=True)
        if not limits or limits[-1] <= 0:
            raise ConfigError(f"power limits must be positive watts, got {list(self.power_limits_w)}",
                              "pass the GPU's supported range, e.g. 300,275,...,100")
        if self.world_size < 1:
            raise ConfigError(f"world_size must be >= 1, got {self.world_size}",
                              "pass the number of GPUs the job runs on")
        if not (0.0 <= self.time_tolerance < 1.0):
            raise ConfigError(f"time_tolerance must lie in [0, 1), got {self.time_tolerance}",
                              "use a small fraction such as 0.10 (10% timing noise)")
        self.power_limits_w = limits

    @property
    def max_power_w(self) -> float:
        return float(self.power_limits_w[0] * self.world_size)

    def cost(self, m: PowerLimitMeasurement) -> float:
        return zeus_cost(m.energy_j, m.time_s, self.eta, self.max_power_w)

    def next_limit(self) -> int | None:
        """The limit to measure next, or None when exploration is over."""
        if self._stopped:
            return None
        done = {m.power_limit_w for m in self.measurements}
        for p in self.power_limits_w:
            if p not in done:
                return p
        return None

    def observe(self, power_limit_w: int, time_s: float, energy_j: float) -> None:
        expected = self.next_limit()
        if expected is None:
            raise ConfigError("power-limit exploration is already over",
                              "read chosen_limit_w instead of observing more windows")
        if int(power_limit_w) != expected:
            raise ConfigError(f"observed a window at {power_limit_w} W while {expected} W was due",
                              "set the limit next_limit() returned before measuring")
        if not (time_s > 0 and energy_j >= 0) or math.isnan(time_s) or math.isnan(energy_j):
            raise ConfigError(f"window at {power_limit_w} W has time {time_s} s, energy "
                              f"{energy_j} J", "measure a non-empty window with a working "
                              "energy counter (see gearshift.tuning.boundaries.energy_delta_j)")
        m = PowerLimitMeasurement(int(power_limit_w), float(time_s), float(energy_j))
        self.measurements.append(m)
        if self.early_stop and self._no_lower_limit_can_win(m):
            self._stopped = True

    def _no_lower_limit_can_win(self, latest: PowerLimitMeasurement) -> bool:
        best = min(self.cost(m) for m in self.measurements)
        # the cost of any lower limit with no energy at all: a lower bound on its real cost
        floor = zeus_cost(0.0, latest.time_s * (1.0 - self.time_tolerance), self.eta,
                          self.max_power_w)
        return floor > best

    @property
    def done(self) -> bool:
        return self.next_limit() is None

    @property
    def chosen_limit_w(self) -> int:
        if not self.measurements:
            raise ConfigError("no power limit has been measured yet",
                              "observe() at least one window before asking for the choice")
        return min(self.measurements, key=self.cost).power_limit_w

    @property
    def explored_fraction(self) -> float:
        return len(self.measurements) / len(self.power_limits_w)

    def save(self, path: str | Path) -> None:
        """Persist the measurements so the next run of the job starts from the choice."""
        data = {"kind": "gearshift.power_limit_profile", "version": 1, "eta": self.eta,
                "world_size": self.world_size, "power_limits_w": list(self.power_limits_w),
                "measurements": [asdict(m) for m in self.measurements]}
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: str | Path, **overrides) -> "PowerLimitOptimizer":
        try:
            from ..model._io import read_json  # noqa: PLC0415  (limits, UTF-8, no NaN)

            data = read_json(path)
            if data.get("kind") != "gearshift.power_limit_profile":
                raise KeyError("kind")
            ms = [PowerLimitMeasurement(**m) for m in data["measurements"]]
            args = {"power_limits_w": data["power_limits_w"], "eta": data["eta"],
                    "world_size": data["world_size"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FormatError(str(path), "measurements", f"not a power-limit profile ({exc})",
                              "pass a file written by PowerLimitOptimizer.save") from None
        args.update(overrides)
        opt = cls(**args)
        for m in ms:
            if opt.next_limit() == m.power_limit_w:
                opt.observe(m.power_limit_w, m.time_s, m.energy_j)
        return opt


def optimum_limit(measurements: Sequence[PowerLimitMeasurement], eta: float,
                  world_size: int = 1) -> int:
    """The exhaustive answer: the limit of least cost among all measurements."""
    eta = _check_eta(eta)
    p_max = max(m.power_limit_w for m in measurements) * world_size
    return min(measurements,
               key=lambda m: zeus_cost(m.energy_j, m.time_s, eta, p_max)).power_limit_w


def run_optimizer(measurements: Sequence[PowerLimitMeasurement], eta: float,
                  **kwargs) -> PowerLimitOptimizer:
    """Feed a table of measurements to the online optimizer in the order it asks for them."""
    table = {m.power_limit_w: m for m in measurements}
    opt = PowerLimitOptimizer(power_limits_w=list(table), eta=eta, **kwargs)
    while (p := opt.next_limit()) is not None:
        opt.observe(p, table[p].time_s, table[p].energy_j)
    return opt


class PowerLimitLoop:
    """Drives a ``PowerLimitOptimizer`` from a training loop: call ``step()`` once per iteration.

    ``set_limit(watts)`` applies a limit (NVML needs root or the daemon; pass a logger for a dry
    run); ``device`` is anything with ``energy_j()`` and ``time_s()`` counters (the Device
    protocol). Each limit gets ``warmup_iterations`` to settle, then ``profile_iterations``
    measured; energy is differenced with ``energy_delta_j`` so a wrapping counter is handled
    and a reset one is a clear error. When exploration ends the chosen limit is applied.
    """

    def __init__(self, optimizer: PowerLimitOptimizer, device, set_limit,
                 wrap_j: float | None = None):
        self.opt, self.device, self.set_limit, self.wrap_j = optimizer, device, set_limit, wrap_j
        self._limit: int | None = None
        self._count = 0
        self._start: tuple[float, float] | None = None
        self.applied_w: int | None = None

    def _apply(self, watts: int) -> None:
        if watts != self.applied_w:
            self.set_limit(int(watts))
            self.applied_w = int(watts)

    def step(self) -> None:
        from .boundaries import energy_delta_j

        if self.opt.done:
            return
        if self._limit is None:
            self._limit = self.opt.next_limit()
            self._apply(self._limit)
            self._count = 0
            self._start = None
        self._count += 1
        w, p = self.opt.warmup_iterations, self.opt.profile_iterations
        if self._count == w + 1:
            self._start = (self.device.time_s(), self.device.energy_j())
        elif self._count == w + p + 1:
            t0, e0 = self._start
            self.opt.observe(self._limit, self.device.time_s() - t0,
                             energy_delta_j(e0, self.device.energy_j(), self.wrap_j))
            self._limit = None
            if self.opt.done:
                self._apply(self.opt.chosen_limit_w)
            else:
                self.step()      # this iteration already runs under the next limit
