"""Sample-efficient partition frontiers on the simulated GPU: hypervolume vs fraction measured.

    .venv/bin/python bench/partition_sampling.py                 # H100 preset, default options
    .venv/bin/python bench/partition_sampling.py --fractions 0.05 0.1 0.15 0.2 --quick

Ground truth: every partition's options (SM clock x overlap choice, gearshift.profile's default
set) profiled exhaustively on the simulated GPU. The sampler (gearshift.search.sampling, GP +
expected hypervolume improvement) then measures options one at a time; a measurement returns
the simulator's value for that option (read from the exhaustive table: the simulator is
deterministic, so this is the value a re-run would give). Hypervolume is reported against two
reference points per partition:
  - "space": the worst time and the worst energy over all the partition's options (the usual
    reference of design-space exploration; the target >= 99% at <= 15% is stated on this one);
  - "front": the exhaustive frontier's own nadir + 10% of its range (much stricter: it scores
    only the frontier's shape). "oracle" is the best any method could reach on it with the same
    number of measurements (the best subset of exhaustive frontier points, by dynamic programme).
The iteration line composes the sampled partition frontiers and compares the iteration frontier
and the iso-time plan with those from the exhaustive profile.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from gearshift.search.compose import compose
from gearshift.search.partition_frontier import hypervolume, partition_frontier
from gearshift.search.sampling import sample_frontier


def simulated_profiles(quick: bool):
    """(name, Profile) pairs on the simulated H100: tensor-parallel (with all-reduce) and not."""
    from gearshift.devices import open_device
    from gearshift.devices.sim.workloads import gpt_stack_trace
    from gearshift.partition import partition
    from gearshift.profile import profile_partitions

    dev = open_device("sim", preset="h100-sxm")
    out = []
    cases = [("gpt-tp8", dict(layers=2, hidden=8192, heads=64, tp=8)),
             ("gpt-tp1", dict(layers=2, hidden=4096, heads=32, tp=1))]
    for name, kw in cases[: 1 if quick else 2]:
        trace = gpt_stack_trace(seq=2048, **kw)
        parts = partition(trace, switch_latency_s=getattr(dev.preset, "switch_latency_s", None))
        out.append((name, profile_partitions(trace, parts, dev, progress=False)))
    return out


def best_subset_hv(t: np.ndarray, e: np.ndarray, ref, k: int) -> float:
    """Largest hypervolume of any k points of a Pareto staircase (time-sorted): the oracle."""
    n = t.size
    k = min(k, n)
    # best[c][j]: most area from points j.. when j is taken and c points are used from j on
    best = np.full((k + 1, n), -np.inf)
    best[1] = (ref[0] - t) * (ref[1] - e)
    for c in range(2, k + 1):
        for j in range(n - 1):
            step = (t[j + 1:] - t[j]) * (ref[1] - e[j]) + best[c - 1][j + 1:]
            best[c][j] = step.max()
    return float(best[1:].max())


def evaluate_partition(opts, fraction: float, seed: int = 0) -> dict:
    exact = partition_frontier(opts)
    table = {(o.freq_mhz, o.overlap): (o.time_s, o.energy_j) for o in opts}
    started = time.perf_counter()
    res = sample_frontier(list(table), lambda f, ov: table[(f, ov)], fraction, seed=seed,
                          partition=opts[0].partition)
    seconds = time.perf_counter() - started
    fr = res.frontier
    space = (max(o.time_s for o in opts), max(o.energy_j for o in opts))
    span_t = exact.time_s[-1] - exact.time_s[0]
    span_e = exact.energy_j[0] - exact.energy_j[-1]
    front = (exact.time_s[-1] + 0.1 * span_t, exact.energy_j[0] + 0.1 * span_e)
    hv = lambda f, ref: hypervolume(f.time_s, f.energy_j, ref)  # noqa: E731
    return {"options": len(opts), "measured": fr.num_measured,
            "measured_frac": fr.num_measured / len(opts),
            "hv_space": hv(fr, space) / hv(exact, space),
            "hv_front": hv(fr, front) / hv(exact, front),
            "oracle_front": best_subset_hv(exact.time_s, exact.energy_j, front,
                                           fr.num_measured) / hv(exact, front),
            "frontier_points": len(exact), "seconds": seconds, "sampled": fr, "exact": exact}


def evaluate(fraction: float, quick: bool = False) -> list[dict]:
    rows = []
    for name, profile in simulated_profiles(quick):
        per = [evaluate_partition(opts, fraction) for opts in profile.by_partition()]
        it_exact = compose([r["exact"] for r in per])
        it_sampled = compose([r["sampled"] for r in per])
        ref = (it_exact.time_s[-1] + 0.1 * (it_exact.time_s[-1] - it_exact.time_s[0]),
               it_exact.energy_j[0] + 0.1 * (it_exact.energy_j[0] - it_exact.energy_j[-1]))
        it_hv = hypervolume(it_sampled.time_s, it_sampled.energy_j, ref) / \
            hypervolume(it_exact.time_s, it_exact.energy_j, ref)
        # least energy at the exhaustive fastest time (iso-time-like); where sampling missed a
        # partition's fastest option, at the sampled fastest time instead, and that time's gap
        t_cmp = max(it_exact.time_s[0], it_sampled.time_s[0])
        e_sampled = it_sampled.energy_j[it_sampled.time_s <= t_cmp * (1 + 1e-9)].min()
        e_exact = it_exact.energy_j[it_exact.time_s <= t_cmp * (1 + 1e-9)].min()
        rows.append({"case": name, "fraction": fraction, "partitions": len(per),
                     "options_per_partition": float(np.mean([r["options"] for r in per])),
                     "measured_frac_max": max(r["measured_frac"] for r in per),
                     "hv_space_min": min(r["hv_space"] for r in per),
                     "hv_space_mean": float(np.mean([r["hv_space"] for r in per])),
                     "hv_front_min": min(r["hv_front"] for r in per),
                     "hv_front_mean": float(np.mean([r["hv_front"] for r in per])),
                     "oracle_front_mean": float(np.mean([r["oracle_front"] for r in per])),
                     "iteration_hv_front": it_hv,
                     "iteration_energy_at_fastest_rel": e_sampled / e_exact - 1,
                     "iteration_fastest_time_gap": it_sampled.time_s[0] / it_exact.time_s[0] - 1,
                     "seconds_per_partition": float(np.mean([r["seconds"] for r in per]))})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10, 0.15, 0.20])
    ap.add_argument("--quick", action="store_true", help="one workload only")
    args = ap.parse_args(argv)
    print("partition sampling on the simulated H100 (GP + EHVI); hypervolume as a fraction of "
          "the exhaustive frontier's")
    print(f"{'case':8s} {'budget':>6s} {'opts':>5s} {'meas%max':>8s} | {'HV space min/mean':>17s} "
          f"| {'HV front min/mean':>17s} {'oracle':>6s} | {'iter HV':>7s} {'E@fast':>7s} {'dT fast':>7s} | s/part")
    for frac in args.fractions:
        for r in evaluate(frac, args.quick):
            print(f"{r['case']:8s} {frac:6.0%} {r['options_per_partition']:5.0f} "
                  f"{r['measured_frac_max']:8.1%} | {r['hv_space_min']:8.2%} "
                  f"{r['hv_space_mean']:8.2%} | {r['hv_front_min']:8.2%} {r['hv_front_mean']:8.2%} "
                  f"{r['oracle_front_mean']:6.2%} | {r['iteration_hv_front']:7.2%} "
                  f"{r['iteration_energy_at_fastest_rel']:+7.2%} {r['iteration_fastest_time_gap']:+7.3%} | "
                  f"{r['seconds_per_partition']:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
