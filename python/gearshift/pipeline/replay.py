"""Replay measured pipeline runs (the Perseus A40 experiments) through the executor.

Inputs, per run: every stage's instruction order and clocks (``plan_frequency_sequences.csv``),
the measured time of every (plan, rank, instruction, clock) (``measured_instructions_by_plan.csv``)
and the measured iteration time and per-GPU energy (``measured_plans.csv``,
``measured_plan_ranks.csv``). Per-instruction energy was not recorded, so it is fitted:

    iteration time  T = makespan(t, p2p_s) + overhead_s + clock_overhead_s * x_plan
                    x_plan = f_max / (time-weighted mean clock of the plan)
                    (work outside the profiled computations, part of it running at the plan's
                    clocks; p2p_s, overhead_s and clock_overhead_s >= 0 fitted)
    GPU energy      E_rank = sum_ops t_op * P_instr(f_op) + P_block * (T - busy_rank)
    P_instr(f)      = a_k + b_k x^3,  x = f / f_max, k = forward|backward

(``b_k x^3`` is the dynamic power activity * V^2 * f with V roughly proportional to f over the
clocks these plans use; every coefficient is constrained >= 0, so the fit stays physical.)

All of it is fitted per model on the even-numbered plans and scored on the odd ones. Warm-up
plans (``is_warmup_plan``) are left out: at all-max clocks they draw ~20% more energy than the
first regular plan at about the same time (the profiler runs then), which no plan model explains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .executor import PipelineGraph
from .order import INSTRUCTIONS, parse_sequence

F_MAX_MHZ = 1740.0      # the A40's highest SM clock, the unit of x in P_instr


@dataclass
class MeasuredRun:
    system: str
    model: str
    plan: int
    graph: PipelineGraph
    time_s: np.ndarray        # (S, 2, N) measured duration of every computation
    freq_mhz: np.ndarray      # (S, 2, N)
    rank_stage: np.ndarray    # (R,) stage of every GPU
    rank_energy_j: np.ndarray # (R,) measured energy of every GPU per iteration
    iter_time_s: float        # measured
    iter_energy_j: float      # measured, all GPUs

    @property
    def stages(self) -> int:
        return self.graph.stages


@dataclass
class ReplayFit:
    p2p_s: float
    overhead_s: float
    clock_overhead_s: float   # overhead that grows as f_max / mean clock
    power_coef: np.ndarray    # a_F b_F a_B b_B P_block (W), all >= 0

    @property
    def blocking_power_w(self) -> float:
        return float(self.power_coef[-1])


@dataclass
class ModelReplay:
    system: str
    model: str
    fit: ReplayFit
    train_plans: list[int]
    test_plans: list[int]
    time_mape: float          # fraction, on the test plans
    energy_mape: float
    train_time_mape: float
    train_energy_mape: float
    predictions: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    # (plan, measured time, predicted time, measured energy, predicted energy), test plans


def load_runs(experiments_dir: str | Path, system: str = "perseus",
              include_warmup: bool = False) -> list[MeasuredRun]:
    from ..model._io import read_published_csv  # noqa: PLC0415

    root = Path(experiments_dir)
    files = {k: root / f"{k}.csv" for k in ("plan_frequency_sequences", "measured_plans",
                                            "measured_plan_ranks",
                                            "measured_instructions_by_plan")}
    for name, p in files.items():
        if not p.exists():
            raise FormatError(str(p), "<file>", "does not exist",
                              "point at the perseus_a40/experiments folder of the shared data")
    key = ["system", "model", "plan"]
    seq = read_published_csv(files["plan_frequency_sequences"], "Perseus experiments",
                             key + ["rank", "stage", "inst_sequence", "freq_sequence"],
                             numeric=["plan", "rank", "stage"])
    plans = read_published_csv(files["measured_plans"], "Perseus experiments",
                               key + ["is_warmup_plan", "iter_time_s", "iter_energy_j"],
                               numeric=["plan", "is_warmup_plan", "iter_time_s",
                                        "iter_energy_j"])
    ranks = read_published_csv(files["measured_plan_ranks"], "Perseus experiments",
                               key + ["stage", "iter_energy_j"],
                               numeric=["plan", "stage", "iter_energy_j"])
    instr = read_published_csv(files["measured_instructions_by_plan"], "Perseus experiments",
                               key + ["stage", "instruction", "frequency", "time_mean_s",
                                      "n_instr"],
                               numeric=["plan", "stage", "frequency", "time_mean_s", "n_instr"])
    plans = plans[plans.system == system]
    if not include_warmup:
        plans = plans[plans.is_warmup_plan == 0]
    # every stage's GPUs run the same computations: pool their measured times, weighted by count
    instr = instr[instr.system == system].assign(w=lambda d: d.time_mean_s * d.n_instr)
    times = instr.groupby(key + ["stage", "instruction", "frequency"])[["w", "n_instr"]].sum()
    times = (times.w / times.n_instr).to_dict()
    seq_groups = {k: g for k, g in seq[seq.system == system].groupby(key)}
    rank_groups = {k: g for k, g in ranks[ranks.system == system].groupby(key)}
    runs = []
    graphs: dict = {}          # plans of one model share their orders: compile each once
    try:  # the four files must describe the same plans, ranks and instructions
        for p in plans.itertuples():
            k = (p.system, p.model, p.plan)
            first = seq_groups[k].sort_values("rank").drop_duplicates("stage").sort_values("stage")
            order = [parse_sequence(s) for s in first.inst_sequence]
            key = tuple(first.inst_sequence)
            graph = graphs.get(key) or graphs.setdefault(key, PipelineGraph(order))
            t = np.zeros((graph.stages, 2, graph.microbatches))
            f = np.zeros_like(t)
            for s, (o, fs) in enumerate(zip(order, first.freq_sequence)):
                for (ins, m), fq in zip(o, map(int, fs.split())):
                    t[s, ins, m] = times[k + (s, INSTRUCTIONS[ins], fq)]
                    f[s, ins, m] = fq
            rk = rank_groups[k]
            runs.append(MeasuredRun(p.system, p.model, int(p.plan), graph, t, f,
                                    rk.stage.to_numpy(), rk.iter_energy_j.to_numpy(),
                                    float(p.iter_time_s), float(p.iter_energy_j)))
    except (KeyError, ValueError) as exc:
        raise FormatError(str(root), "<files>", "the experiment files disagree "
                          f"({type(exc).__name__}: {str(exc)[:80]})",
                          "point at the published perseus_a40/experiments folder") from None
    return runs


def _makespan(run: MeasuredRun, p2p_s: float) -> float:
    return float(run.graph.schedule(run.time_s, p2p_s)[1].max())


def _makespans(runs: list[MeasuredRun], p2p_s: float) -> np.ndarray:
    """Makespans of many runs, batched per shared graph."""
    out = np.empty(len(runs))
    groups: dict = {}
    for i, r in enumerate(runs):
        groups.setdefault(id(r.graph), []).append(i)
    for idx in groups.values():
        g = runs[idx[0]].graph
        out[idx] = g.makespans(np.stack([runs[i].time_s for i in idx]), p2p_s)
    return out


def _x(run: MeasuredRun) -> float:
    """f_max over the plan's time-weighted mean clock (1 for an all-max plan)."""
    return float(run.time_s.sum() / (run.time_s * run.freq_mhz / F_MAX_MHZ).sum())


def _overheads(runs: list[MeasuredRun], mk: np.ndarray) -> tuple[float, float]:
    """Least squares of (measured - makespan) on [1, x]; the clock term kept >= 0."""
    gap = np.array([r.iter_time_s for r in runs]) - mk
    x = np.array([_x(r) for r in runs])
    if len(runs) >= 3 and np.ptp(x) > 0:
        b = float(np.polyfit(x, gap, 1)[0])
        if b > 0:
            return float(np.mean(gap - b * x)), b
    return float(np.mean(gap)), 0.0


def _features(run: MeasuredRun, stage: int, iter_time_s: float) -> np.ndarray:
    t, x = run.time_s[stage], run.freq_mhz[stage] / F_MAX_MHZ
    row = [(t[k] * x[k] ** j).sum() for k in (0, 1) for j in (0, 3)]
    row.append(iter_time_s - t.sum())
    return np.array(row)


def fit_time(runs: list[MeasuredRun], p2p_max_s: float = 0.1) -> tuple[float, float, float]:
    """(p2p_s, overhead_s, clock_overhead_s) minimising the time MAPE; for each p2p the two
    overheads are the least-squares fit of the residual."""
    from scipy.optimize import minimize_scalar  # noqa: PLC0415

    meas = np.array([r.iter_time_s for r in runs])
    x = np.array([_x(r) for r in runs])

    def err(p2p):
        mk = _makespans(runs, p2p)
        a, b = _overheads(runs, mk)
        return float(np.mean(np.abs(mk + a + b * x - meas) / meas)), (a, b)

    # the error is piecewise smooth in p2p: a coarse grid, then a bounded refinement
    grid = np.linspace(0.0, p2p_max_s, 26)
    i = int(np.argmin([err(p)[0] for p in grid]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    p2p = float(minimize_scalar(lambda p: err(p)[0], bounds=(lo, hi), method="bounded",
                                options={"xatol": 1e-4}).x)
    return (p2p, *err(p2p)[1])


def predict(run: MeasuredRun, fit: ReplayFit) -> tuple[float, float]:
    """Predicted (iteration time, energy of all GPUs) of one run."""
    t = _makespan(run, fit.p2p_s) + fit.overhead_s + fit.clock_overhead_s * _x(run)
    e = sum(float(_features(run, s, t) @ fit.power_coef) for s in run.rank_stage)
    return t, e


def fit_model(runs: list[MeasuredRun]) -> ReplayFit:
    p2p, overhead, clock_overhead = fit_time(runs)
    rows, y = [], []
    for r in runs:
        t = _makespan(r, p2p) + overhead + clock_overhead * _x(r)
        for s, e in zip(r.rank_stage, r.rank_energy_j):
            rows.append(_features(r, s, t))
            y.append(e)
    from scipy.optimize import nnls  # noqa: PLC0415

    coef, _ = nnls(np.array(rows), np.array(y))
    return ReplayFit(p2p, overhead, clock_overhead, coef)


def _mape(pairs) -> float:
    return float(np.mean([abs(p - m) / m for m, p in pairs]))


def validate(experiments_dir: str | Path, system: str = "perseus") -> list[ModelReplay]:
    """Fit on even plans, score on odd plans, per model."""
    runs = load_runs(experiments_dir, system)
    out = []
    for model in sorted({r.model for r in runs}):
        mine = sorted((r for r in runs if r.model == model), key=lambda r: r.plan)
        train = [r for r in mine if r.plan % 2 == 0]
        test = [r for r in mine if r.plan % 2 == 1]
        fit = fit_model(train)
        pred_train = [predict(r, fit) for r in train]
        pred_test = [predict(r, fit) for r in test]
        out.append(ModelReplay(
            system, model, fit, [r.plan for r in train], [r.plan for r in test],
            _mape((r.iter_time_s, p[0]) for r, p in zip(test, pred_test)),
            _mape((r.iter_energy_j, p[1]) for r, p in zip(test, pred_test)),
            _mape((r.iter_time_s, p[0]) for r, p in zip(train, pred_train)),
            _mape((r.iter_energy_j, p[1]) for r, p in zip(train, pred_train)),
            [(r.plan, r.iter_time_s, p[0], r.iter_energy_j, p[1])
             for r, p in zip(test, pred_test)]))
    return out


def pooled(results: list[ModelReplay]) -> tuple[float, float]:
    """Time and energy MAPE over every test plan of every model."""
    n = np.array([len(r.test_plans) for r in results])
    return (float(np.average([r.time_mape for r in results], weights=n)),
            float(np.average([r.energy_mape for r in results], weights=n)))
