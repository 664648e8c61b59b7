"""gearshift's pipeline frontier against Perseus's and EnvPipe's on the A40 stage profiles.

Scaling as ../shared/data/perseus_a40/SOURCE.md: time x10, energy x80, blocking power
8 x 70.38 W per stage; 8-stage synchronous 1F1B. Every plan of ours is re-scored exactly by the
pipeline executor. Perseus's frontier files hold numbers only (from its fitted model, times
rounded down to its 1 ms quantum), EnvPipe's a single point; they are read as given.

    .venv/bin/python bench/pipeline_vs_perseus.py
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "perseus_a40"
P_BLOCK_W = 8 * 70.38
TIME_SCALE, ENERGY_SCALE = 10.0, 80.0
CASES = [("gpt3-175b", 12), ("gpt3-175b", 24), ("bloom", 12), ("bloom", 24)]


def perseus_frontier(model: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.loadtxt(DATA / "frontier" / f"{model}_bf16_mb{n}.csv", delimiter=",", skiprows=1)
    o = np.argsort(d[:, 0])
    return d[o, 0] * TIME_SCALE, d[o, 1] * ENERGY_SCALE


def envpipe_point(model: str, n: int) -> tuple[float, float]:
    with (DATA / "envpipe_result_a40.csv").open() as fh:
        for r in csv.DictReader(fh):
            if r["model"] == model and int(r["num_microbatches"]) == n:
                return float(r["iteration_time"]), float(r["energy"])
    raise KeyError((model, n))


def at_time(times: np.ndarray, energies: np.ndarray, t: float) -> float:
    ok = times <= t * (1 + 1e-12)
    return float(energies[ok].min()) if ok.any() else float("inf")


def evaluate(model: str, n: int) -> dict:
    from gearshift.pipeline import load_stage_profile
    from gearshift.search.pipeline_plan import plan_pipeline
    from gearshift.search.refine import staircase

    prof = load_stage_profile(DATA / "stage_profile" / f"{model}+a40_bf16.csv", TIME_SCALE,
                              ENERGY_SCALE)
    t0 = time.perf_counter()
    res = plan_pipeline(prof, "1f1b", 8, n, P_BLOCK_W, "iso-time")
    solve_s = time.perf_counter() - t0
    base = res.baseline
    pt, pe = perseus_frontier(model, n)
    ev_t, ev_e = envpipe_point(model, n)
    # away from the fastest time: Perseus's points at or beyond the all-max-clock time
    away = pt >= base.time_s
    gap = staircase(res.search, pt[away]) / pe[away] - 1
    lb = res.search.bounds.get(base.time_s, float("nan"))
    return {
        "model": model, "microbatches": n,
        "allmax_time_s": base.time_s, "allmax_energy_j": base.energy_j,
        "iso_time_s": res.result.time_s, "iso_energy_j": res.result.energy_j,
        "iso_saving": res.saving,
        "iso_bound_saving": 1 - lb / base.energy_j,
        "envpipe_time_s": ev_t, "envpipe_energy_j": ev_e,
        "envpipe_saving": 1 - ev_e / base.energy_j,
        "perseus_at_allmax_saving": 1 - at_time(pt, pe, base.time_s) / base.energy_j,
        "max_gap_vs_perseus": float(gap.max()),
        "mean_gap_vs_perseus": float(gap.mean()),
        "frontier_points": len(res.frontier),
        "refine_passes": len(res.passes),
        "refine_gains": " ".join(f"{p.gain_rel:.4f}" for p in res.passes),
        "solve_s": solve_s,
    }


def n96_time(model: str = "gpt3-175b", repeats: int = 3) -> dict:
    """The N=96 frontier (first sweep, fast preset) wall time, best of ``repeats``."""
    from gearshift.pipeline import load_stage_profile
    from gearshift.search.pipeline import pipeline_frontier
    from gearshift.search.pipeline_problem import PipelineProblem

    prof = load_stage_profile(DATA / "stage_profile" / f"{model}+a40_bf16.csv", TIME_SCALE,
                              ENERGY_SCALE)
    best, best_cpu, search = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        prob = PipelineProblem(prof, "1f1b", 8, 96, P_BLOCK_W)
        search = pipeline_frontier(prob, points=6, between=4, thorough=False)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    base = search.baseline
    iso = search.best_within(base.time_s)
    return {"model": model, "microbatches": 96, "frontier_s": best, "frontier_cpu_s": best_cpu,
            "frontier_points": len(search.pareto()),
            "iso_saving": 1 - iso.energy_j / base.energy_j,
            "iso_bound_saving": 1 - search.bounds[base.time_s] / base.energy_j}


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    rows = [evaluate(m, n) for m, n in CASES]
    t = Table(title="A40 8-stage 1F1B: gearshift vs Perseus vs EnvPipe (exact re-scoring)")
    for c in ("case", "all-max s", "all-max J", "iso J", "iso save", "bound", "EnvPipe J",
              "EnvPipe save", "Perseus@all-max", "max gap", "solve s"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(f"{r['model']} N={r['microbatches']}", f"{r['allmax_time_s']:.3f}",
                  f"{r['allmax_energy_j']:.0f}", f"{r['iso_energy_j']:.0f}",
                  f"{r['iso_saving']:.2%}", f"{r['iso_bound_saving']:.2%}",
                  f"{r['envpipe_energy_j']:.0f}", f"{r['envpipe_saving']:.2%}",
                  f"{r['perseus_at_allmax_saving']:.2%}", f"{r['max_gap_vs_perseus']:+.2%}",
                  f"{r['solve_s']:.2f}")
    Console().print(t)
    r96 = n96_time()
    print(f"N=96 frontier ({r96['model']}): {r96['frontier_s']:.3f} s wall, "
          f"{r96['frontier_cpu_s']:.3f} s CPU, "
          f"{r96['frontier_points']} points, iso-time saving {r96['iso_saving']:.2%} "
          f"(bound {r96['iso_bound_saving']:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
