"""Speed of the simulated GPU and of the pipeline executor.

Targets (issue #3): a trace of thousands of kernels under a per-partition schedule in well under
a second (here: <= 0.25 s median for ~3000 kernels, ~770 partitions, a clock switch at most
boundaries, overlap on every communication partition); pipeline evaluations: >= 1000 per
second one at a time on 8 stages x 24 microbatches.
Usage: python bench/sim_speed.py [--repeat 5]
Prints one line per measurement and a verdict; exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

TIMELINE_TARGET_S = 0.25
PIPELINE_TARGET_PER_S = 1000.0


def bench_timeline(repeat: int) -> float:
    from gearshift.devices.sim import SimDevice
    from gearshift.devices.sim.workloads import gpt_stack_trace
    from gearshift.model import NO_OVERLAP, Overlap, Partitioning

    trace = gpt_stack_trace(layers=96, hidden=4096, heads=32, seq=2048, micro_batch=2, tp=8)
    part = Partitioning.from_cuts(trace, list(range(0, len(trace), 4)))
    rng = np.random.default_rng(0)
    cold, warm = [], []
    for _ in range(repeat):
        # cold: a fresh device, so no memoised costs; the trace's one-off compile is excluded
        dev = SimDevice("h100-sxm")
        fs = rng.choice(dev.preset.freqs_mhz[:60], size=len(part.partitions))
        choices = [(int(f), Overlap.window(0, 99) if p.has_comm else NO_OVERLAP)
                   for f, p in zip(fs, part.partitions)]
        t0 = time.perf_counter()
        dev.timeline(trace, part)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = dev.run_iteration(trace, part, choices, advance=False)
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dev.run_iteration(trace, part, choices, advance=False)
        warm.append(time.perf_counter() - t0)
    med = statistics.median(cold)
    print(f"timeline kernels={len(trace)} partitions={len(part.partitions)} "
          f"switches={res.num_switches} compile_s={compile_s:.4f} cold_median_s={med:.4f} "
          f"warm_median_s={statistics.median(warm):.4f}")
    return med


def bench_pipeline(repeat: int) -> tuple[float, float]:
    from gearshift.pipeline import PipelinePlan, StageProfile, execute
    from gearshift.pipeline.executor import graph_for

    rng = np.random.default_rng(0)
    freqs = list(range(855, 1741, 15))
    recs = [(s, k, f, 0.1 * (1 + 800 / f), 30.0 * (0.7 + f / 3000)) for s in range(8)
            for k in ("forward", "backward") for f in freqs]
    prof = StageProfile.from_records(recs)
    plans = [PipelinePlan(rng.choice(freqs, size=(8, 2, 24))) for _ in range(200)]
    execute(prof, plans[0], "1f1b", 8, 24, 70.0)
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for p in plans:
            execute(prof, p, "1f1b", 8, 24, 70.0)
        rates.append(len(plans) / (time.perf_counter() - t0))
    single = statistics.median(rates)
    g = graph_for("1f1b", 8, 24)
    batch = rng.uniform(0.1, 0.3, size=(5000, 8, 2, 24))
    t0 = time.perf_counter()
    g.makespans(batch)
    batched = len(batch) / (time.perf_counter() - t0)
    print(f"pipeline 8x24 1f1b execute_per_s={single:.0f} batched_makespans_per_s={batched:.0f}")
    return single, batched


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    med = bench_timeline(args.repeat)
    single, _ = bench_pipeline(args.repeat)
    ok = med <= TIMELINE_TARGET_S and single >= PIPELINE_TARGET_PER_S
    print(f"timeline_median_s={med:.4f} target_s={TIMELINE_TARGET_S} "
          f"pipeline_execute_per_s={single:.0f} target_per_s={PIPELINE_TARGET_PER_S:.0f} "
          f"{'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
