"""Replays the Zeus traces through the tuners and compares with the traces' own optima."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import zeus_trace
from ...objective import zeus_cost
from ..power_limit import optimum_limit, run_optimizer

DEFAULT_ETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class LimitComparison:
    source: str             # "a40" ... or the profiling-log file name
    workload: str
    batch_size: int | None
    eta: float
    chosen_w: int
    optimum_w: int
    explored: int           # limits measured before stopping
    available: int          # limits in the range
    cost_excess: float      # chosen cost / optimum cost - 1 (0 when they match)

    @property
    def match(self) -> bool:
        return self.chosen_w == self.optimum_w


def _compare(source, workload, bs, ms, eta, world_size=1, **kw) -> LimitComparison:
    opt = run_optimizer(ms, eta, world_size=world_size, **kw)
    best = optimum_limit(ms, eta, world_size)
    p_max = max(m.power_limit_w for m in ms) * world_size
    by_limit = {m.power_limit_w: m for m in ms}

    def cost(p):
        return zeus_cost(by_limit[p].energy_j, by_limit[p].time_s, eta, p_max)

    return LimitComparison(source, workload, bs, eta, opt.chosen_limit_w, best,
                           len(opt.measurements), len(ms),
                           cost(opt.chosen_limit_w) / cost(best) - 1.0)


def power_limit_table(shared_data: str | Path, etas: Sequence[float] = DEFAULT_ETAS,
                      gpus: Sequence[str] = zeus_trace.GPUS, all_batch_sizes: bool = False,
                      **optimizer_kwargs) -> list[LimitComparison]:
    """For each GPU and workload (at its default batch size, or at every batch size)."""
    rows = []
    for gpu in gpus:
        power = zeus_trace.load_power(shared_data, gpu)
        for workload, job in zeus_trace.JOBS.items():
            sizes = sorted(power[power.workload == workload].batch_size.unique())
            if not sizes:
                continue
            if not all_batch_sizes:
                sizes = [zeus_trace.nearest_batch_size(sizes, job.default_batch_size)]
            for bs in sizes:
                ms = zeus_trace.measurements_for(power, workload, int(bs))
                for eta in etas:
                    rows.append(_compare(gpu, workload, int(bs), ms, eta, **optimizer_kwargs))
    return rows


def profile_log_table(shared_data: str | Path, etas: Sequence[float] = DEFAULT_ETAS,
                      **optimizer_kwargs) -> list[LimitComparison]:
    """The same check on Zeus's own profiling windows (multi-GPU logs sum the GPUs)."""
    folder = zeus_trace.trace_root(shared_data) / "zeus_test_profile_data"
    rows = []
    for path in sorted(folder.glob("*.csv")):
        ms, n_gpus = zeus_trace.load_profile_windows(path)
        gpu, model = path.stem.split("+")[:2]
        for eta in etas:
            rows.append(_compare(path.stem, f"{gpu}/{model}", None, ms, eta,
                                 world_size=n_gpus, **optimizer_kwargs))
    return rows
