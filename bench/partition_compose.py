"""Speed and accuracy of composing many partition frontiers (single-GPU iteration search).

    .venv/bin/python bench/partition_compose.py [--partitions 100 300 1000]

Each case: synthetic physically-shaped partitions (H100's 110 clocks; every other partition has
an all-reduce with 6 overlap choices: 660 options, else 110). Prints the time to build the
partition frontiers, to compose them, and the whole plan_iteration (with refinement); and the
composition's stated error bound against a reference composed at a 16x (1000: 4x) finer quantum.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from gearshift.search.compose import compose
from gearshift.search.iteration import plan_iteration
from gearshift.search.partition_frontier import profile_frontiers
from gearshift.search.synthetic import make_profile


def best_of(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def case(n: int) -> dict:
    profile, partitioning = make_profile(n, seed=1)
    t_fr, frs = best_of(lambda: profile_frontiers(profile, energy_includes_static=True))
    t_c, comp = best_of(lambda: compose(frs))
    finer = 16 if n <= 300 else 4           # the reference table must fit in memory
    fine = compose(frs, comp.time_quantum_s / finer)
    # worst extra time the default composition needs to match the fine one's energy
    pos = np.searchsorted(-comp.energy_j, -fine.energy_j, side="right") - 1
    ok = pos >= 0
    excess = float(np.max(comp.time_s[np.clip(pos, 0, None)][ok] - fine.time_s[ok], initial=0.0))
    t_plan, (frontier, schedule) = best_of(lambda: plan_iteration(profile, partitioning,
                                                                  objective="max-slowdown=1.05"),
                                           repeat=2)
    return {"partitions": n, "options": len(profile.entries) / n,
            "frontier_points": float(np.mean([len(f) for f in frs])), "frontiers_s": t_fr,
            "compose_s": t_c, "points": len(comp), "bound_s": comp.error_bound_s,
            "iteration_s": float(comp.time_s[0]), "excess_vs_fine_s": excess,
            "finer": finer, "plan_s": t_plan, "passes": len(frontier.meta["passes"]),
            "saving": schedule.predicted["energy_saving"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, nargs="+", default=[100, 300, 1000])
    args = ap.parse_args(argv)
    print("composition of partition frontiers (synthetic H100-like partitions), best of 3")
    for n in args.partitions:
        r = case(n)
        print(f"  {r['partitions']:5d} partitions x {r['options']:.0f} options "
              f"({r['frontier_points']:.0f} on each frontier): frontiers {r['frontiers_s']:.3f} s, "
              f"compose {r['compose_s']:.3f} s -> {r['points']} points, stated bound "
              f"{r['bound_s'] * 1e3:.3f} ms = {r['bound_s'] / r['iteration_s']:.3%} of the "
              f"iteration (measured vs {r['finer']}x finer: {r['excess_vs_fine_s'] * 1e3:.3f} ms); "
              f"plan_iteration {r['plan_s']:.3f} s ({r['passes']} passes, max-slowdown=1.05 "
              f"saving {r['saving']:.1%})")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
