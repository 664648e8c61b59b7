"""Batch-size bandit regret over recurrences on the Zeus traces; writes per-recurrence CSV.

    .venv/bin/python bench/tuning_batch_size.py [--gpu v100] [--eta 0.5] [--recurrences 50]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from gearshift.cli.tune import print_batch_size
from gearshift.tuning.replay import recurrence, zeus_trace

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", default="../shared/data")
    ap.add_argument("--gpu", default="v100")
    ap.add_argument("--eta", type=float, default=0.5)
    ap.add_argument("--recurrences", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="bench/results/tuning_batch_size.csv")
    a = ap.parse_args()
    print_batch_size(a.trace, list(zeus_trace.JOBS), a.gpu, a.eta, a.recurrences,
                     range(a.seeds), None)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "gpu", "eta", "seed", "recurrence", "batch_size", "cost",
                    "regret", "cumulative_regret", "best_fixed_batch_size", "best_fixed_cost"])
        for wl in zeus_trace.JOBS:
            for s in range(a.seeds):
                r = recurrence.simulate(a.trace, wl, a.gpu, a.eta, a.recurrences, seed=s)
                for i, (b, c, g, cg) in enumerate(zip(r.batch_sizes, r.costs, r.regret,
                                                      r.cumulative_regret)):
                    w.writerow([wl, a.gpu, a.eta, s, i, b, c, g, cg, r.best_fixed_batch_size,
                                r.best_fixed_cost])
    print(f"wrote {out}")
