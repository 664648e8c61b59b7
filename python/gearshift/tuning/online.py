"""Online profiling, exploitation, exploration and re-planning on drift (GPOEO-style).

No offline profile is needed: during the first iterations every partition is measured just in
time, stepping its clock down from the highest candidate one candidate per few iterations, all
partitions in the same iterations. A partition stops stepping down once its cost has risen for
``patience`` candidates or it has slowed down by more than ``max_partition_slowdown``, and
profiling as a whole stops once the extra time it cost exceeds ``stall_budget_s``. Then each
partition runs at its cheapest measured clock (cost ``eta*E + (1-eta)*P_ref*T``, separable
over partitions because their times and energies add up).

While exploiting, a small ``explore_rate`` of iterations moves one partition to a neighbouring
candidate to keep the table fresh, and every partition's observed time and energy is compared
with what it did right after the last plan. A partition that deviates by more than
``drift_threshold`` for ``drift_patience`` iterations (data drift, a thermal change, a job
sharing the GPU) is profiled again, and the plan is remade.

The tuner talks to a ``PartitionRunner``: anything that runs one iteration with one clock per
partition and reports per-partition time and energy. ``SimRunner`` adapts the simulated GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from ..errors import ConfigError
from ..objective import check_eta, zeus_cost


class PartitionRunner(Protocol):
    num_partitions: int

    def run(self, freqs_mhz: Sequence[int]):
        """One training iteration; returns per-partition (time_s, energy_j) arrays."""


@dataclass
class OnlineConfig:
    candidates_mhz: Sequence[int]               # highest first is the driver default
    eta: float = 0.7
    reference_power_w: float = 700.0            # P_ref of the cost (the GPU's TDP)
    iterations_per_candidate: int = 2           # the first of them absorbs the clock switch
    patience: int = 2
    rise_margin: float = 0.03                   # a cost rise smaller than this is noise
    reprofile_headroom: int = 3                 # after drift, restart this many candidates up
    max_partition_slowdown: float = 0.6
    stall_budget_s: float = math.inf            # extra time one profiling episode may cost
    explore_rate: float = 0.02
    drift_threshold: float = 0.08
    drift_patience: int = 3
    reference_iterations: int = 3               # post-plan iterations that set the reference
    seed: int = 0

    def __post_init__(self):
        c = sorted({int(f) for f in self.candidates_mhz}, reverse=True)
        if len(c) < 2:
            raise ConfigError("online tuning needs at least two candidate clocks",
                              "pass several of the device's supported SM clocks")
        self.candidates_mhz = c
        self.eta = check_eta(self.eta)
        if self.iterations_per_candidate < 1:
            raise ConfigError("iterations_per_candidate must be >= 1", "use 2")


@dataclass
class _PartitionState:
    exploring: bool = True
    index: int = 0                               # candidate being profiled
    runs_left: int = 0
    base_time_s: float | None = None             # time at the episode's first candidate
    start: int = 0                               # candidate the episode started from
    step: int = 1                                # +1: towards lower clocks, -1: higher
    rises: int = 0
    table: dict = field(default_factory=dict)    # candidate index -> (time_s, energy_j)
    choice: int = 0                              # candidate index exploited
    ref: tuple | None = None
    ref_samples: list = field(default_factory=list)
    over: int = 0


@dataclass
class IterationLog:
    iteration: int
    mode: str            # "profile" | "exploit" | "explore"
    freqs_mhz: list
    time_s: float
    energy_j: float
    replanned: bool = False
    drifted: list = field(default_factory=list)


class OnlineTuner:
    def __init__(self, runner: PartitionRunner, config: OnlineConfig):
        import numpy as np

        self.runner = runner
        self.cfg = config
        self.rng = np.random.default_rng(config.seed)
        self.parts = [self._fresh() for _ in range(runner.num_partitions)]
        self.log: list[IterationLog] = []
        self.stall_spent_s = 0.0

    def _fresh(self) -> _PartitionState:
        return _PartitionState(runs_left=self.cfg.iterations_per_candidate)

    def cost(self, time_s: float, energy_j: float) -> float:
        c = self.cfg
        return zeus_cost(energy_j, time_s, c.eta, c.reference_power_w)

    @property
    def profiling(self) -> bool:
        return any(p.exploring for p in self.parts)

    def plan_mhz(self) -> list[int]:
        return [self.cfg.candidates_mhz[p.choice] for p in self.parts]

    # ------------------------------------------------------------------ one iteration
    def step(self) -> IterationLog:
        cand = self.cfg.candidates_mhz
        explore_part = None
        if self.profiling:
            mode = "profile"
            idx = [p.index if p.exploring else p.choice for p in self.parts]
        else:
            mode = "exploit"
            idx = [p.choice for p in self.parts]
            if self.rng.random() < self.cfg.explore_rate:
                mode = "explore"
                explore_part = int(self.rng.integers(len(self.parts)))
                j = idx[explore_part] + int(self.rng.choice([-1, 1]))
                idx[explore_part] = min(max(j, 0), len(cand) - 1)
        freqs = [cand[i] for i in idx]
        times, energies = self.runner.run(freqs)
        entry = IterationLog(len(self.log), mode, freqs, float(sum(times)), float(sum(energies)))
        if mode == "profile":
            self._observe_profile(idx, times, energies)
            if not self.profiling:
                self._replan()
                entry.replanned = True
        else:
            entry.drifted = self._observe_exploit(idx, times, energies, explore_part)
            for i in entry.drifted:
                # GPOEO-style local search: the optimum moved, but rarely from the top
                old = self.parts[i].choice
                self.parts[i] = self._fresh()
                self.parts[i].index = self.parts[i].start = max(
                    old - self.cfg.reprofile_headroom, 0)
                self.parts[i].choice = old        # kept if the budget ends the episode early
            if entry.drifted:
                self.stall_spent_s = 0.0
        self.log.append(entry)
        return entry

    def run(self, iterations: int) -> list[IterationLog]:
        return [self.step() for _ in range(iterations)]

    # ------------------------------------------------------------------ profiling
    def _observe_profile(self, idx, times, energies) -> None:
        """Stall = time an exploring partition takes beyond its time at the episode's first
        candidate; partitions not exploring run their plan and cost nothing extra."""
        cfg = self.cfg
        slow = 0.0
        for i, p in enumerate(self.parts):
            if not p.exploring:
                continue
            t, e = float(times[i]), float(energies[i])
            if p.base_time_s is not None:
                slow += max(0.0, t - p.base_time_s)
            p.runs_left -= 1
            if p.runs_left > 0:
                continue                      # warm-up iteration: the switch landed in it
            if p.base_time_s is None:
                p.base_time_s = t
            p.table[p.index] = (t, e)
            best = min(self.cost(*v) for v in p.table.values())
            p.rises = 0 if self.cost(t, e) <= best * (1 + cfg.rise_margin) else p.rises + 1
            too_slow = p.step > 0 and t > (1 + cfg.max_partition_slowdown) * p.base_time_s
            nxt = p.index + p.step
            if p.rises >= cfg.patience or too_slow or not 0 <= nxt < len(cfg.candidates_mhz):
                best_k = min(p.table, key=lambda k: self.cost(*p.table[k]))
                if p.step > 0 and best_k == p.start and p.start > 0:
                    # the best is the highest clock tried: the optimum may lie above it
                    p.step, p.index, p.rises = -1, p.start - 1, 0
                    p.runs_left = cfg.iterations_per_candidate
                else:
                    self._finish(p)
            else:
                p.index = nxt
                p.runs_left = cfg.iterations_per_candidate
        self.stall_spent_s += slow
        if self.stall_spent_s > cfg.stall_budget_s:
            for p in self.parts:
                if p.exploring:
                    self._finish(p)

    def _finish(self, p: _PartitionState) -> None:
        p.exploring = False
        if p.table:
            p.choice = min(p.table, key=lambda k: self.cost(*p.table[k]))

    def _replan(self) -> None:
        for p in self.parts:
            self._finish(p)
            p.ref, p.ref_samples, p.over = None, [], 0

    # ------------------------------------------------------------------ exploitation
    def _observe_exploit(self, idx, times, energies, explore_part) -> list[int]:
        cfg = self.cfg
        drifted = []
        for i, p in enumerate(self.parts):
            t, e = float(times[i]), float(energies[i])
            if i == explore_part:
                old = p.table.get(idx[i])
                p.table[idx[i]] = (t, e) if old is None else (0.5 * (old[0] + t),
                                                               0.5 * (old[1] + e))
                current = p.table.get(p.choice)
                if current is None or self.cost(*p.table[idx[i]]) < self.cost(*current):
                    p.choice = idx[i]
                    p.ref, p.ref_samples, p.over = None, [], 0
                continue
            if explore_part is not None:
                continue    # a neighbour's clock change perturbs this iteration's timing
            if p.ref is None:
                p.ref_samples.append((t, e))
                if len(p.ref_samples) >= cfg.reference_iterations:
                    n = len(p.ref_samples)
                    p.ref = (sum(s[0] for s in p.ref_samples) / n,
                             sum(s[1] for s in p.ref_samples) / n)
                continue
            dev = max(abs(t / p.ref[0] - 1), abs(e / p.ref[1] - 1))
            p.over = p.over + 1 if dev > cfg.drift_threshold else 0
            if p.over >= cfg.drift_patience:
                drifted.append(i)
        return drifted


class SimRunner:
    """The simulated GPU as a PartitionRunner; ``drift()`` swaps in a changed workload."""

    def __init__(self, device, trace, partitioning, noise: float = 0.01, seed: int = 0):
        import numpy as np

        self.device = device
        self.trace = trace
        self.partitioning = partitioning
        self.num_partitions = len(partitioning)
        self.noise = noise
        self.rng = np.random.default_rng([seed, 11])

    def drift(self, trace=None, device=None) -> None:
        """Change the workload (same kernels, other sizes) or the GPU's behaviour."""
        if trace is not None:
            self.partitioning.check_trace(trace)
            self.trace = trace
        if device is not None:
            self.device = device

    def run(self, freqs_mhz):
        from ..model import NO_OVERLAP

        res = self.device.run_iteration(self.trace, self.partitioning,
                                        [(int(f), NO_OVERLAP) for f in freqs_mhz])
        self.last = res      # the truth, for figures; the tuner only sees the noisy copy
        k = self.rng.normal(1.0, self.noise, (2, self.num_partitions)) if self.noise else 1.0
        return res.partition_time_s * (k[0] if self.noise else 1), \
            res.partition_energy_j * (k[1] if self.noise else 1)
