"""How fast the op-level tracer and the partitioner are, per zoo preset (all measured now).

    .venv/bin/python bench/trace_speed.py                 # warm in-process timings + cold CLI
    .venv/bin/python bench/trace_speed.py --csv bench/results/trace_speed.csv

Warm: best of ``--repeat`` traces in one process (torch imported, meta kernels set up). Cold: the
wall time of ``gearshift trace --model gpt-1.3b`` and ``gearshift partition`` as fresh processes,
what a user waits for. The target (issue #4): GPT-1.3B traces and partitions in seconds.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = ("gpt-125m", "gpt-1.3b", "gpt-1.3b-tp4", "gpt-13b", "resnet50")


def warm(presets, repeat: int) -> list[dict]:
    from gearshift.partition import partition
    from gearshift.trace import trace_preset

    trace_preset("gpt-tiny")   # one-time torch set-up, reported by the cold figures instead
    rows = []
    for name in presets:
        trace_s, trace = min((_timed(trace_preset, name) for _ in range(repeat)),
                             key=lambda r: r[0])
        part_s, parts = min((_timed(partition, trace) for _ in range(repeat)), key=lambda r: r[0])
        rows.append({"case": name, "kernels": len(trace), "params": trace.meta["params"],
                     "tflop": trace.total_flops() / 1e12, "trace_s": trace_s,
                     "partitions": len(parts), "partition_s": part_s})
        print(f"  {name:14s} {trace.meta['params'] / 1e9:6.2f} B params  {len(trace):5d} kernels "
              f"{trace.total_flops() / 1e12:8.1f} TFLOP  trace {trace_s:6.3f} s  "
              f"partition {part_s:6.3f} s ({len(parts)} partitions)")
    return rows


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def cold(model: str) -> dict:
    exe = Path(sys.executable).with_name("gearshift")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run([str(exe), "trace", "--model", model, "--out", f"{d}/t.json"], check=True,
                       capture_output=True)
        t1 = time.perf_counter()
        subprocess.run([str(exe), "partition", f"{d}/t.json", "--out", f"{d}/p.json"],
                       check=True, capture_output=True)
        t2 = time.perf_counter()
    print(f"  cold CLI {model}: gearshift trace {t1 - t0:.2f} s, gearshift partition "
          f"{t2 - t1:.2f} s (wall, fresh processes)")
    return {"case": f"cli/{model}", "trace_s": t1 - t0, "partition_s": t2 - t1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="*", default=list(PRESETS))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--csv", default=None, help="also write the figures here")
    args = ap.parse_args()
    print(f"op-level tracer, meta device (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    rows = warm(args.presets, args.repeat) + [cold("gpt-1.3b")]
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["bench", "case", "metric", "value"])
            for r in rows:
                for k, v in r.items():
                    if k != "case":
                        w.writerow(["trace", r["case"], k, v])


if __name__ == "__main__":
    main()
