"""The same pipeline problem through lowtime (Perseus's solver) and through gearshift.

lowtime (Phillips-Dessouky over a quantised DAG, cost = energy - P_block*time as in Perseus)
walks the frontier from the slowest to the fastest time one quantum per iteration; every plan it
yields is re-scored exactly by gearshift's pipeline executor, as gearshift's own plans are.
lowtime's exponential cost fit fails on the A40 profiles with its default grid of initial
guesses, so an initial guess per instruction is fitted here (scipy) and passed in; only the
solver is timed, not the fit. Times are CPU seconds of this process (the machine is shared: wall
time would also count other processes' turns, differently for the two solvers).

    .venv/bin/python bench/lowtime_speed.py --model gpt3-175b --microbatches 12
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "perseus_a40"
P_BLOCK_W = 8 * 70.38          # SOURCE.md: 70.38 W per GPU, 8 GPUs (TP=8) per stage
TIME_SCALE, ENERGY_SCALE = 10.0, 80.0


def load(model: str):
    from gearshift.pipeline import load_stage_profile

    return load_stage_profile(DATA / "stage_profile" / f"{model}+a40_bf16.csv",
                              TIME_SCALE, ENERGY_SCALE)


def fit_initial_guess(quant_times: np.ndarray, costs: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) of cost ~ a*exp(b*q) + c: scan b, solve a and c by least squares, refine."""
    from scipy.optimize import curve_fit

    q = quant_times.astype(float)
    span = max(q.max() - q.min(), 1.0)
    best = None
    for b in -np.geomspace(0.1 / span, 50.0 / span, 60):
        x = np.exp(b * (q - q.min()))
        A = np.column_stack([x, np.ones_like(x)])
        (a, c), *_ = np.linalg.lstsq(A, costs, rcond=None)
        err = float(np.sum((A @ [a, c] - costs) ** 2))
        if a > 0 and (best is None or err < best[0]):
            best = (err, a * np.exp(-b * q.min()), b, c)
    _, a, b, c = best
    try:
        (a, b, c), _ = curve_fit(lambda t, a, b, c: a * np.exp(b * t) + c, q, costs,
                                 p0=(a, b, c), maxfev=50000)
    except RuntimeError:
        pass
    return float(a), float(b), float(c)


def build_dag(prob, unit_time_s: float):
    """lowtime's activity-on-node DAG of the same pipeline (same edges as the executor)."""
    import networkx as nx
    from lowtime.cost_model import ExponentialModel
    from lowtime.operation import (CandidateExecutionOptions, DummyOperation, ExecutionOption,
                                   OperationSpec)
    from lowtime.perseus.instruction import Backward, Forward

    prof = prob.profile
    specs = {}
    for s in range(prob.stages):
        for k in (0, 1):
            opts = [ExecutionOption(real_time=float(prof.time_s[s, k, i]), unit_time=unit_time_s,
                                    cost=float(prof.energy_j[s, k, i] -
                                               prob.blocking_power_w * prof.time_s[s, k, i]),
                                    knob=int(prof.freqs_mhz[i]))
                    for i in range(len(prof.freqs_mhz))]
            cand = CandidateExecutionOptions(options=opts)
            q = np.array([o.quant_time for o in cand.options])
            c = np.array([o.cost for o in cand.options])
            model = ExponentialModel(cand, initial_guess=fit_initial_guess(q, c))
            specs[(s, k)] = OperationSpec(options=cand, cost_model=model)
    g = prob.graph
    dag = nx.DiGraph()
    src, sink = g.num_ops, g.num_ops + 1
    dag.add_node(src, op=DummyOperation())
    dag.add_node(sink, op=DummyOperation())
    for i in range(g.num_ops):
        s, k, m = int(g.op_stage[i]), int(g.op_instr[i]), int(g.op_mb[i])
        cls = Forward if k == 0 else Backward
        dag.add_node(i, op=cls(spec=specs[(s, k)], stage_id=s, micro_batch_id=m))
    for i in range(g.num_ops):
        if not prob.preds[i]:
            dag.add_edge(src, i)
        for p in prob.preds[i]:
            dag.add_edge(p, i)
        if not prob.succ[i]:
            dag.add_edge(i, sink)
    dag.graph["source_node"], dag.graph["sink_node"] = src, sink
    return dag


def run_lowtime(prob, unit_time_s: float = 0.01, keep_every: int = 1,
                time_limit_s: float | None = None):
    """(solver seconds, plans) where plans are (S,2,N) clock arrays lowtime visited."""
    from lowtime.solver import PhillipsDessouky

    logging.getLogger("lowtime").setLevel(logging.WARNING)
    dag = build_dag(prob, unit_time_s)
    solver = PhillipsDessouky(dag)
    g = prob.graph
    ops = [dag.nodes[i]["op"] for i in range(g.num_ops)]
    plans, solve_s, collect_s = [], 0.0, 0.0
    t0 = time.process_time()
    for it, _ in enumerate(solver.run()):
        t1 = time.process_time()
        solve_s += t1 - t0
        if it % keep_every == 0:
            freq = np.empty(g.num_ops, dtype=np.int64)
            freq[g.op_flat] = [op.assigned_knob for op in ops]
            plans.append(freq.reshape(prob.stages, 2, prob.microbatches))
        t0 = time.process_time()
        collect_s += t0 - t1
        if time_limit_s is not None and solve_s > time_limit_s:
            break
    solve_s += time.process_time() - t0
    return solve_s, plans


def rescore(prob, plans):
    from gearshift.pipeline import PipelinePlan

    out = []
    for f in plans:
        r = prob.rescore(PipelinePlan(f))
        out.append((r.time_s, r.energy_j))
    return np.array(out)


def compare(model: str, microbatches: int, time_limit_s: float | None = None) -> dict:
    from gearshift.search.pipeline import pipeline_frontier
    from gearshift.search.pipeline_problem import PipelineProblem
    from gearshift.search.refine import refine, staircase

    prof = load(model)
    prob = PipelineProblem(prof, "1f1b", 8, microbatches, P_BLOCK_W)
    t0 = time.process_time()
    search = pipeline_frontier(prob)
    refine(search, tol=5e-3, max_passes=3)
    ours_s = time.process_time() - t0
    lt_s, plans = run_lowtime(PipelineProblem(prof, "1f1b", 8, microbatches, P_BLOCK_W),
                              time_limit_s=time_limit_s)
    pts = rescore(prob, plans)
    # quality: at every time lowtime reached, our best energy vs lowtime's best (both exact)
    order = np.argsort(pts[:, 0])
    lt_t, lt_e = pts[order, 0], np.minimum.accumulate(pts[order, 1])
    ours = staircase(search, lt_t)
    worse = float(np.max(ours / lt_e - 1))
    base = search.baseline
    lt_iso = lt_e[lt_t <= base.time_s * (1 + 1e-12)]
    return {"model": model, "microbatches": microbatches, "gearshift_s": ours_s,
            "lowtime_s": lt_s, "ratio": lt_s / ours_s, "lowtime_plans": len(plans),
            "lowtime_fastest_s": float(lt_t.min()),
            "max_energy_vs_lowtime": worse,
            "gearshift_iso_saving": 1 - search.best_within(base.time_s).energy_j / base.energy_j,
            "lowtime_iso_saving": (1 - lt_iso.min() / base.energy_j) if len(lt_iso) else
            float("nan")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt3-175b", choices=("gpt3-175b", "bloom"))
    ap.add_argument("--microbatches", type=int, default=12)
    ap.add_argument("--time-limit-s", type=float, default=None,
                    help="Stop lowtime after this much solver time (its frontier is then partial).")
    a = ap.parse_args(argv)
    r = compare(a.model, a.microbatches, a.time_limit_s)
    for k, v in r.items():
        print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
