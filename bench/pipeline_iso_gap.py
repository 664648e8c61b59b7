"""Iso-time quality on the shared A40 profiles (issue #16 item 4): gaps to the bounds, per workload.

For GPT-3 175B and BLOOM, 8-stage 1F1B, N = 12 and 24 (scaled as ../shared/data/perseus_a40/
SOURCE.md: time x10, energy x80, blocking power 8 x 70.38 W), at T = the all-max-clock time:
  lp_pts      the selected iso-time plan's energy above the relaxation's bound (pipeline_lp:
              every computation on the convex hull of all its clocks), in points of the all-max
              energy: before the polish (polish_s=0) and after (the default)
  tight_pts   the same against the hull LP over feasible clocks (pipeline_polish.tight_bound)
  cpu_s       CPU seconds of the whole plan_pipeline call, before and after
With ``--milp S``: the exact MILP (pipeline_milp, every clock, S seconds of HiGHS, warm-started
from the polished plan): its best plan and its proven dual bound, in points above the LP bound,
so the gap to the discrete optimum is known to lie between (polished - milp_best) and
(polished - milp_dual). Every plan is re-scored exactly by the pipeline executor.

    .venv/bin/python bench/pipeline_iso_gap.py [--only bloom-24 ...] [--milp 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "perseus_a40"
P_BLOCK_W = 8 * 70.38
CASES = ["gpt3-175b-12", "gpt3-175b-24", "bloom-12", "bloom-24"]


def run(case: str, milp_s: float) -> dict:
    from gearshift.pipeline import load_stage_profile
    from gearshift.search.pipeline_plan import plan_pipeline
    from gearshift.search.pipeline_polish import choice_of, tight_bound

    model, n = case.rsplit("-", 1)
    n = int(n)
    prof = load_stage_profile(DATA / "stage_profile" / f"{model}+a40_bf16.csv", 10.0, 80.0)
    out = {"case": case}
    for name, polish_s in (("before", 0.0), ("after", None)):
        c0 = time.process_time()
        res = plan_pipeline(prof, "1f1b", 8, n, P_BLOCK_W, "iso-time", polish_s=polish_s)
        cpu = time.process_time() - c0
        base = res.baseline
        t = base.time_s
        lp = res.search.bounds[t]
        assert res.result.time_s <= t * (1 + 1e-12)
        out[f"lp_pts_{name}"] = 100 * (res.result.energy_j - lp) / base.energy_j
        out[f"cpu_s_{name}"] = cpu
    prob = res.search.problem
    tight = res.search.tight_bounds.get(t)
    if tight is None:
        tight = tight_bound(prob, t)
    out["tight_over_lp_pts"] = 100 * (tight - lp) / base.energy_j
    out["tight_pts_after"] = 100 * (res.result.energy_j - tight) / base.energy_j
    if milp_s > 0:
        from gearshift.search.pipeline_milp import milp_plan

        choice, dual, optimal = milp_plan(prob, t, time_limit_s=milp_s, rel_gap=1e-6,
                                          start=choice_of(prob, res.plan))
        r = prob.rescore(prob.to_plan(choice))
        out["milp_best_pts"] = 100 * (r.energy_j - lp) / base.energy_j
        out["milp_dual_pts"] = 100 * (dual - lp) / base.energy_j
        out["milp_optimal"] = optimal
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=CASES, choices=CASES)
    ap.add_argument("--milp", type=float, default=0.0, metavar="S",
                    help="also run the exact MILP for S seconds per case")
    a = ap.parse_args(argv)
    for case in a.only:
        r = run(case, a.milp)
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in r.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
