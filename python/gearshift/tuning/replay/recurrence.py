"""Trace-driven recurring jobs: the batch-size bandit against the best fixed batch size.

One recurrence = train until the target metric is reached. A try with batch size ``b`` runs at
the power limit the power-limit optimizer picks for ``b``; its epochs-to-target come from a
seed drawn at random from the train trace (NaN there = never reached within ``max_epochs``),
its per-epoch time and energy from the power trace. As in Zeus, a try is stopped once its cost
exceeds ``beta`` times the cheapest recurrence so far, and the recurrence retries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConfigError
from . import zeus_trace
from ..batch_size import BatchSizeOptimizer
from ...objective import zeus_cost
from ..power_limit import run_optimizer

MAX_TRIES = 20


@dataclass
class ArmModel:
    """What running one batch size costs: per-epoch cost at its chosen limit, and the seeds."""

    batch_size: int
    power_limit_w: int
    epoch_cost: float
    epochs_to_target: list[float]   # one per seed; NaN = not reached
    max_epochs: int

    @property
    def reach_probability(self) -> float:
        ok = [e for e in self.epochs_to_target if not math.isnan(e) and e <= self.max_epochs]
        return len(ok) / len(self.epochs_to_target)

    def expected_cost(self) -> float:
        """Expected cost of a recurrence that always uses this arm (retrying failed seeds)."""
        ok = [e for e in self.epochs_to_target if not math.isnan(e) and e <= self.max_epochs]
        q = 1.0 - len(ok) / len(self.epochs_to_target)
        if not ok:
            return math.inf
        success = sum(ok) / len(ok) * self.epoch_cost
        failure = self.max_epochs * self.epoch_cost
        return success + failure * q / (1.0 - q)


@dataclass
class RecurrenceResult:
    workload: str
    gpu: str
    eta: float
    seed: int
    best_fixed_batch_size: int
    best_fixed_cost: float
    costs: list[float] = field(default_factory=list)        # per recurrence, retries included
    batch_sizes: list[int] = field(default_factory=list)    # the batch size that reached

    @property
    def regret(self) -> list[float]:
        return [c - self.best_fixed_cost for c in self.costs]

    @property
    def cumulative_regret(self) -> list[float]:
        out, acc = [], 0.0
        for r in self.regret:
            acc += r
            out.append(acc)
        return out


def arm_models(shared_data, job: zeus_trace.TraceJob, gpu: str, eta: float) -> list[ArmModel]:
    power = zeus_trace.load_power(shared_data, gpu)
    train = zeus_trace.load_train(shared_data)
    train = train[(train.workload == job.workload) &
                  ((train.target_metric - job.target_metric).abs() < 1e-9)]
    sizes = sorted(set(power[power.workload == job.workload].batch_size)
                   & set(train.batch_size))
    if not sizes:
        raise ConfigError(f"no batch size of {job.workload} is in both traces for {gpu}",
                          "pick another GPU or workload")
    out = []
    for bs in sizes:
        ms = zeus_trace.measurements_for(power, job.workload, int(bs))
        pl = run_optimizer(ms, eta).chosen_limit_w
        m = next(x for x in ms if x.power_limit_w == pl)
        p_max = max(x.power_limit_w for x in ms)
        epochs = [float(e) for e in train[train.batch_size == bs].target_epoch]
        out.append(ArmModel(int(bs), pl, zeus_cost(m.energy_j, m.time_s, eta, p_max), epochs,
                            job.max_epochs))
    return out


def simulate(shared_data, workload: str, gpu: str = "v100", eta: float = 0.5,
             recurrences: int = 50, seed: int = 0, beta: float = 2.0,
             state_path: str | Path | None = None) -> RecurrenceResult:
    import numpy as np

    job = zeus_trace.JOBS.get(workload)
    if job is None:
        raise ConfigError(f"unknown trace workload '{workload}'",
                          f"use one of {', '.join(zeus_trace.JOBS)}")
    arms = {a.batch_size: a for a in arm_models(shared_data, job, gpu, eta)}
    default = zeus_trace.nearest_batch_size(list(arms), job.default_batch_size)
    best = min(arms.values(), key=ArmModel.expected_cost)
    res = RecurrenceResult(workload, gpu, eta, seed, best.batch_size, best.expected_cost())
    bso = BatchSizeOptimizer(f"{workload}@{gpu}", list(arms), default, state_path, seed=seed)
    rng = np.random.default_rng([seed, 7])
    min_cost = math.inf
    try:
        for r in range(recurrences):
            total = 0.0
            for _ in range(MAX_TRIES):
                b = bso.predict()
                arm = arms[b]
                epochs = arm.epochs_to_target[rng.integers(len(arm.epochs_to_target))]
                reached = not math.isnan(epochs) and epochs <= job.max_epochs
                cost = (epochs if reached else job.max_epochs) * arm.epoch_cost
                if cost > beta * min_cost:
                    cost, reached = beta * min_cost, False
                bso.observe(b, cost, reached, r)
                total += cost
                if reached:
                    break
            else:
                raise ConfigError(f"{workload}: no try reached the target in {MAX_TRIES}",
                                  "lower the target metric")
            min_cost = min(min_cost, total)
            res.costs.append(total)
            res.batch_sizes.append(b)
    finally:
        bso.close()
    return res
