"""Online tuning under drift on the simulated GPU: energy vs stale schedule and default clocks.

    .venv/bin/python bench/tuning_online.py [--iterations 1200] [--drift-at 300] [--seeds 3]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from gearshift.cli.tune import print_online

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=1200)
    ap.add_argument("--drift-at", type=int, default=300)
    ap.add_argument("--preset", default="h100-sxm")
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/tuning_online.csv")
    a = ap.parse_args()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "method", "energy_j", "time_s", "detected_at", "recovered_at",
                    "profile_iterations"])
        for seed in range(a.seeds):
            r = print_online(a.iterations, a.drift_at, a.preset, a.eta, seed)
            for m in r.energy_j:
                w.writerow([seed, m, r.energy_j[m], r.time_s[m], r.detected_at, r.recovered_at,
                            r.profile_iterations])
    print(f"wrote {out}")
