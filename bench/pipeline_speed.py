"""Pipeline planner scale and speed (issue #16 item 4), every plan re-scored exactly.

Cases (A40 profiles of ../shared/data/perseus_a40, time x10, energy x80, P_block 8 x 70.38 W):
  gpt3-n96     GPT-3 175B, 8 stages, 1F1B, N=96: the whole frontier (sweep + refinement)
  il-16x128    16 ranks x 128 microbatches, Interleaved1F1B, 2 virtual stages: the whole frontier
               (the 8-stage GPT-3 profile tiled to 32 model stages: stage s -> profile s mod 8);
               its order comes from torch's schedule, whose import (once per process, ~2.5 CPU s)
               is timed apart as torch_import_s
  iso-<model>-<N>  iso-time energy of the selected plan vs the relaxation's bound at that time
               (points of the bound's energy), gpt3-175b / bloom, N = 12, 24
  lowtime      lowtime (Perseus's solver, Phillips-Dessouky) on GPT-3 N=12 in the same run:
               its solver time / ours (its fit is not timed; see lowtime_speed.py)

Quality of the two whole-frontier cases against the frontier the planner found before the
network-simplex relaxation (commit 79550d7, bench/results/pipeline_ref, written by
pipeline_frontier_ref.py), by exactly re-scored points (gearshift.search.pipeline_quality):
  ref_misses / ref_worst   reference points no new point (or the new hull) matches within 1e-6
                           of energy at no more time, and the largest relative excess
  new_misses / new_worst   the same the other way round (the reference against the new points)
  hull_mean                mean relative difference of the lower hulls over the common range

    .venv/bin/python bench/pipeline_speed.py [--only gpt3-n96 il-16x128 iso lowtime]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "perseus_a40"
P_BLOCK_W = 8 * 70.38
TIME_SCALE, ENERGY_SCALE = 10.0, 80.0


def load(model: str):
    from gearshift.pipeline import load_stage_profile

    return load_stage_profile(DATA / "stage_profile" / f"{model}+a40_bf16.csv",
                              TIME_SCALE, ENERGY_SCALE)


def tiled(profile, stages: int):
    from gearshift.pipeline import StageProfile

    idx = np.arange(stages) % profile.stages
    return StageProfile(profile.freqs_mhz, profile.time_s[idx], profile.energy_j[idx],
                        profile.source + f" (tiled to {stages})")


def frontier_case(name, profile, kind, stages, n, v=None) -> dict:
    from gearshift.search.pipeline_plan import plan_pipeline

    extra = {}
    if kind not in ("1f1b", "gpipe"):
        c0 = time.process_time()
        import torch.distributed.pipelining.schedules  # noqa: F401
        extra["torch_import_s"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    res = plan_pipeline(profile, kind, stages, n, P_BLOCK_W, "iso-time", virtual_stages=v)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    gap = iso_gap(res)
    extra.update(quality(name, res.frontier))
    # cpu_s: this process's CPU time (all threads); on a shared machine the wall time also
    # counts the time other processes held the cores
    return {"case": name, "frontier_s": wall, "cpu_s": cpu, "points": len(res.frontier),
            "iso_saving_pct": 100 * res.saving, "iso_gap_pts": gap, **extra}


REF = Path(__file__).resolve().parent / "results" / "pipeline_ref"


def quality(name: str, frontier) -> dict:
    from gearshift.search.pipeline_quality import compare, lower_hull_at, read_reference

    path = REF / f"{name}.json"
    if not path.exists():
        return {}
    ref = np.array(read_reference(path))
    new = np.array([(p.time_s, p.energy_j) for p in frontier.points])
    a, b = compare(new, ref), compare(ref, new)
    ts = np.linspace(ref[0, 0], min(ref[-1, 0], new[:, 0].max()), 4000)
    hull = lower_hull_at(new[:, 0], new[:, 1], ts) / lower_hull_at(ref[:, 0], ref[:, 1], ts) - 1
    return {"ref_points": len(ref), "ref_misses": len(a.misses), "ref_worst": a.worst_excess,
            "new_misses": len(b.misses), "new_worst": b.worst_excess,
            "hull_mean": float(np.mean(hull)), "strict_ok": a.ok}


def iso_gap(res) -> float:
    """Percentage points between the selected iso-time plan's saving and the bound's."""
    base = res.baseline
    t = base.time_s
    lb = res.search.bounds.get(t)
    if lb is None:
        from gearshift.search.pipeline_lp import relaxation

        lb = relaxation(res.search.problem).solve(t)[1]
    return 100 * (res.result.energy_j - lb) / base.energy_j


def iso_cases() -> list[dict]:
    out = []
    for model in ("gpt3-175b", "bloom"):
        for n in (12, 24):
            out.append(frontier_case(f"iso-{model}-{n}", load(model), "1f1b", 8, n))
    return out


def lowtime_case() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lowtime_speed as ls

    r = ls.compare("gpt3-175b", 12)
    return {"case": "lowtime-gpt3-12", "gearshift_s": r["gearshift_s"],
            "lowtime_s": r["lowtime_s"], "lowtime_over_gearshift": r["ratio"],
            "max_energy_vs_lowtime": r["max_energy_vs_lowtime"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=["gpt3-n96", "il-16x128", "iso", "lowtime"])
    a = ap.parse_args(argv)
    rows = []
    if "gpt3-n96" in a.only:
        rows.append(frontier_case("gpt3-n96", load("gpt3-175b"), "1f1b", 8, 96))
    if "il-16x128" in a.only:
        rows.append(frontier_case("il-16x128", tiled(load("gpt3-175b"), 32),
                                  "interleaved-1f1b", 16, 128, 2))
    if "iso" in a.only:
        rows += iso_cases()
    if "lowtime" in a.only:
        rows.append(lowtime_case())
    for r in rows:
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in r.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
