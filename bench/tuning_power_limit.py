"""Power limit chosen online vs the Zeus traces' optimum, for several eta; writes a CSV.

    .venv/bin/python bench/tuning_power_limit.py [--trace ../shared/data] [--all-batch-sizes]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

from gearshift.cli.tune import print_power_limit
from gearshift.tuning.replay import validation, zeus_trace

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", default="../shared/data")
    ap.add_argument("--all-batch-sizes", action="store_true")
    ap.add_argument("--time-tolerance", type=float, default=0.10)
    ap.add_argument("--out", default="bench/results/tuning_power_limit.csv")
    a = ap.parse_args()
    rows, logs = print_power_limit(a.trace, validation.DEFAULT_ETAS, zeus_trace.GPUS,
                                   a.all_batch_sizes, a.time_tolerance, True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, [f.name for f in dataclasses.fields(validation.LimitComparison)]
                           + ["match"])
        w.writeheader()
        for r in rows + logs:
            w.writerow({**dataclasses.asdict(r), "match": r.match})
    print(f"wrote {out}")
