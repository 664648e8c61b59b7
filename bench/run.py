"""The bench harness: run benchmarks, print their figures, keep them as CSV, compare runs.

    .venv/bin/python bench/run.py                      # everything, results/<timestamp>.csv
    .venv/bin/python bench/run.py --label base         # results/base.csv
    .venv/bin/python bench/run.py --compare base       # and print the change against base
    .venv/bin/python bench/run.py --only pipeline --no-lowtime
    .venv/bin/python bench/run.py --lowtime all        # lowtime on N=24 too (minutes more)
    .venv/bin/python bench/run.py --only sampling --sampling-full --sampling-fractions 0.05 0.2

A benchmark is a function returning rows ``{"bench", "case", "metric", "value"}``; add one to
BENCHES. Every figure is measured in this run (nothing is copied from an earlier one).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))


def _rows(bench: str, case: str, values: dict) -> list[dict]:
    return [{"bench": bench, "case": case, "metric": k, "value": v} for k, v in values.items()
            if isinstance(v, (int, float))]


def bench_pipeline(args) -> list[dict]:
    """gearshift vs Perseus's frontier and EnvPipe's point on the A40 profiles; N=96 speed."""
    import pipeline_vs_perseus as pv

    out = []
    print("pipeline frontier vs Perseus / EnvPipe (A40, 8-stage 1F1B, exact re-scoring)")
    for model, n in pv.CASES:
        r = pv.evaluate(model, n)
        case = f"{model}/N={n}"
        print(f"  {case:16s} all-max {r['allmax_time_s']:.3f} s {r['allmax_energy_j']:.0f} J | "
              f"iso-time {r['iso_energy_j']:.0f} J, saving {r['iso_saving']:.2%} "
              f"(bound {r['iso_bound_saving']:.2%}) | EnvPipe {r['envpipe_energy_j']:.0f} J "
              f"({r['envpipe_saving']:.2%}) | Perseus frontier at all-max "
              f"{r['perseus_at_allmax_saving']:.2%} | max gap vs Perseus "
              f"{r['max_gap_vs_perseus']:+.2%} (mean {r['mean_gap_vs_perseus']:+.2%}) | "
              f"solve {r['solve_s']:.2f} s, {r['refine_passes']} refine passes, gains "
              f"[{r['refine_gains']}]")
        out += _rows("pipeline", case, r)
    r96 = pv.n96_time()
    print(f"  {r96['model']}/N=96 frontier: {r96['frontier_s']:.3f} s wall, "
          f"{r96['frontier_cpu_s']:.3f} s CPU (best of 3), "
          f"{r96['frontier_points']} points, iso-time saving {r96['iso_saving']:.2%} "
          f"(bound {r96['iso_bound_saving']:.2%}); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    out += _rows("pipeline", f"{r96['model']}/N=96", r96)
    return out


def bench_lowtime(args) -> list[dict]:
    """The same problems through lowtime (Perseus's solver) and gearshift, timed in one run."""
    if args.lowtime == "none":
        print("lowtime: skipped (--no-lowtime)")
        return []
    try:
        import lowtime  # noqa: F401
    except ImportError:
        print("lowtime: not installed (pip install -e '.[bench]'); skipped")
        return []
    import lowtime_speed as ls

    cases = [("gpt3-175b", 12), ("bloom", 12)]
    if args.lowtime == "all":
        cases += [("gpt3-175b", 24), ("bloom", 24)]
    out = []
    print("lowtime 0.3.0 (Phillips-Dessouky, 10 ms quantum) vs gearshift, same problem")
    for model, n in cases:
        r = ls.compare(model, n, args.lowtime_limit_s)
        case = f"{model}/N={n}"
        print(f"  {case:16s} lowtime {r['lowtime_s']:.1f} s ({r['lowtime_plans']} plans) | "
              f"gearshift {r['gearshift_s']:.2f} s | ratio {r['ratio']:.0f}x | gearshift's "
              f"energy vs lowtime's at lowtime's times: at most {r['max_energy_vs_lowtime']:+.2%}"
              f" | iso-time saving gearshift {r['gearshift_iso_saving']:.2%}, lowtime "
              f"{r['lowtime_iso_saving']:.2%}")
        out += _rows("lowtime", case, r)
    return out


def bench_switch(args) -> list[dict]:
    """The runtime's micro-benchmarks (hook cost, backend cost, boundary latency)."""
    from gearshift.runtime import bench as rb

    out = []
    print(f"runtime switch path ({rb.environment()})")
    for name, r in rb.run_all():
        print(f"  {name}: " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in r.items()))
        out += _rows("switch", name, r)
    return out


def bench_compose(args) -> list[dict]:
    """Composing many synthetic partition frontiers: speed and the stated error bound."""
    import partition_compose as pc

    out = []
    print("composition of partition frontiers (synthetic H100-like partitions), best of 3")
    for n in args.compose_partitions:
        r = pc.case(n)
        print(f"  {n:5d} partitions: frontiers {r['frontiers_s']:.3f} s, compose "
              f"{r['compose_s']:.3f} s -> {r['points']} points, bound {r['bound_s'] * 1e3:.3f} ms "
              f"(measured vs {r['finer']}x finer: {r['excess_vs_fine_s'] * 1e3:.3f} ms); "
              f"plan_iteration {r['plan_s']:.3f} s, saving {r['saving']:.1%}")
        out += _rows("compose", f"N={n}", r)
    return out


def bench_sampling(args) -> list[dict]:
    """GP + EHVI partition sampling (`plan --sample`) on zoo presets split in 2 nanobatches,
    simulated: hypervolume vs fraction measured (bench/partition_sampling.py)."""
    import partition_sampling as ps

    out = []
    cases = ps.CASES if args.sampling_full else ps.CASES[:1]
    print("partition sampling on simulated GPUs (hypervolume as a fraction of exhaustive, "
          "min/median/max over partitions)"
          + ("" if args.sampling_full else "; one workload (--sampling-full for all)"))
    for preset, gpu, options in cases:
        profile, _ = ps.case_profile(preset, gpu, options, None)
        for frac in args.sampling_fractions:
            r = ps.evaluate(profile, frac)
            name = f"{preset}/{gpu}/{options}"
            print(f"  {name} budget {frac:.0%}: measured at most {r['measured_frac_max']:.1%}, "
                  "HV front " + "/".join(f"{v:.2%}" for v in r["hv_front"])
                  + ", HV space " + "/".join(f"{v:.2%}" for v in r["hv_space"])
                  + f", >= 99 % on {r['met_99']}/{r['partitions']} partitions (reachable on "
                  f"{r['reachable_99']}), iteration HV {r['iteration_hv_front']:.2%}, "
                  f"{r['seconds_per_partition']:.2f} s/partition")
            flat = {k: v for k, v in r.items() if isinstance(v, (int, float))}
            flat.update({f"hv_front_{s}": v for s, v in zip(("min", "median", "max"),
                                                             r["hv_front"])})
            flat.update({f"hv_space_{s}": v for s, v in zip(("min", "median", "max"),
                                                             r["hv_space"])})
            out += _rows("sampling", f"{name}/{frac:.0%}", flat)
    return out


def bench_trace(args) -> list[dict]:
    """The op-level tracer and partitioner per zoo preset (warm), and the cold CLI."""
    import trace_speed as ts

    print(f"op-level tracer, meta device (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    rows = ts.warm(list(ts.PRESETS), 2) + [ts.cold("gpt-1.3b")]
    return [row for r in rows for row in _rows("trace", r["case"], r)]


def bench_kareus(args) -> list[dict]:
    """Kareus's setting (llama-3.2-3b-tp8, 2 x 8 1F1B, simulated A100) vs its published
    figures, with GP/EHVI sampling at 15 % (bench/kareus_llama.py)."""
    import kareus_llama as kl

    r = kl.run(kl.parse(["--sample", "0.15"]))
    return _rows("kareus", "llama-3.2-3b-tp8/2x8", r)


BENCHES = {"pipeline": bench_pipeline, "lowtime": bench_lowtime, "switch": bench_switch,
           "compose": bench_compose, "sampling": bench_sampling, "trace": bench_trace,
           "kareus": bench_kareus}


def write(rows: list[dict], label: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{label}.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["bench", "case", "metric", "value"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "value": repr(float(r["value"]))})
    return path


def compare(rows: list[dict], label: str) -> None:
    path = RESULTS / f"{label}.csv"
    if not path.exists():
        print(f"compare: {path} does not exist (run with --label {label} first)")
        return
    with path.open() as fh:
        old = {(r["bench"], r["case"], r["metric"]): float(r["value"]) for r in csv.DictReader(fh)}
    print(f"change against {label}:")
    for r in rows:
        key = (r["bench"], r["case"], r["metric"])
        if key in old:
            a, b = old[key], float(r["value"])
            rel = f"{b / a - 1:+.1%}" if a else "n/a"
            print(f"  {r['bench']:9s} {r['case']:18s} {r['metric']:26s} {a:14.6g} -> {b:14.6g}"
                  f"  {rel}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="gearshift benchmarks")
    ap.add_argument("--label", default=None, help="Name of the results CSV (default: a timestamp).")
    ap.add_argument("--compare", default=None, help="Label of an earlier run to compare with.")
    ap.add_argument("--only", action="append", choices=sorted(BENCHES),
                    help="Run only these benchmarks (repeatable).")
    ap.add_argument("--lowtime", choices=("none", "n12", "all"), default="n12",
                    help="Which problems go through lowtime (minutes each at N=24).")
    ap.add_argument("--no-lowtime", dest="lowtime", action="store_const", const="none")
    ap.add_argument("--lowtime-limit-s", type=float, default=None,
                    help="Cap lowtime's solver time per problem (its frontier is then partial).")
    ap.add_argument("--compose-partitions", type=int, nargs="+", default=[100, 300, 1000],
                    help="Partition counts for the compose bench.")
    ap.add_argument("--sampling-fractions", type=float, nargs="+", default=[0.10, 0.15],
                    help="Measured-option budgets for the sampling bench.")
    ap.add_argument("--sampling-full", action="store_true",
                    help="Sampling bench on both workloads (the default runs the TP=8 one).")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    rows: list[dict] = []
    for name in args.only or list(BENCHES):
        rows += BENCHES[name](args)
    label = args.label or time.strftime("%Y%m%d-%H%M%S")
    path = write(rows, label)
    print(f"wrote {path} ({len(rows)} figures) in {time.perf_counter() - started:.0f} s")
    if args.compare:
        compare(rows, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
