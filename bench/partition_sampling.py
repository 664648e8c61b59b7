"""Sample-efficient partition frontiers on the simulated GPU: hypervolume vs fraction measured.

    .venv/bin/python bench/partition_sampling.py                 # every case at 15 %
    .venv/bin/python bench/partition_sampling.py --fractions 0.1 0.15 0.2 --quick

Ground truth: every partition's options (SM clock x overlap choice) profiled exhaustively on the
simulated GPU. The sampler is what ``gearshift plan --sample F`` runs
(``search.iteration.sampled_frontiers``: GP + expected hypervolume improvement, search/sampling.py);
a measurement returns the simulator's value for that option, read from the exhaustive table (the
simulator is deterministic, so this is the value a re-run would give). Every option the search
evaluates counts as measured (start design included); ``meas%max`` is the largest fraction over
partitions. A sampled frontier holds the measured options and the unmeasured ones its surrogates
confidently place on the frontier, at their predicted values; partitions too small for a
surrogate of their own borrow the power-vs-clock shape of the others (transfer).

Scoring: every frontier point counts at its TRUE time and energy, each worsened by the error of
the value the frontier claims for it (0 for a measured point), whichever way it errs
(``iteration.scored_points``). Hypervolume, as a fraction of the exhaustive frontier's with the
same reference point, per partition (min / median / max over a case's partitions):
  - "front": reference = the exhaustive frontier's own nadir + 10 % of its span (strict: a
    frontier of n clock steps needs most of its n points);
  - "space": reference = the worst time and the worst energy over all the partition's options.
"oracle" is the best a search returning measured points only could reach on "front" with the same
number of measurements (the best subset of exhaustive frontier points); "reach" counts the
partitions where such a search could reach 99 % at all (need99 <= budget: the fewest frontier points
holding 99 %, plus one per overlap choice with no point on the frontier).
Iteration columns: "iter HV" composes the scored partition frontiers against the exhaustive
composition; "E@fast" / "dT fast": the plan with the least claimed energy at the exhaustive fastest
time, run (its true energy against the exhaustive least energy at its true time, and its true time
against the exhaustive fastest); "E@+5%": the same within 5 % more time; "claim": how far either
plan's claimed time or energy is from its true one.

Cases (all nanobatched in 2, Kareus's split; SIMULATED GPUs):
  - llama-3.2-3b-tp8, qwen3-1.7b-tp8 on the A100, gpt-1.3b-tp4 on the H100: the options
    ``gearshift profile`` measures by default (the clocks from half the top one up, 6 overlap
    choices) on the default partitioning;
  - kareus: llama-3.2-3b-tp8 and qwen3-1.7b-tp8 on the A100 with bench/kareus_llama.py's options
    (18 clocks 900-1410 MHz in 30 MHz steps x 8 overlap choices, partitions cut at phase changes
    too);
  - kareus-grid: the same with Kareus's own tensor-parallel grid: 18 clocks x (serial + 3 launch
    windows x communication SMs 3-30 in steps of 3) = 558 options per partition.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from gearshift.search.compose import compose
from gearshift.search.iteration import sampled_frontiers, scored_points
from gearshift.search.partition_frontier import (best_subset_hypervolumes, frontier_from_points,
                                                 hypervolume, profile_frontiers)

KAREUS_OVERLAPS = ["serial", "window0-99", "window0-99/sms=6", "window0-99/sms=12",
                   "window0-99/sms=24", "window0-2", "window2-99", "window0-99/sms=12/block=512"]
# Kareus's own tensor-parallel grid: communication SMs 3-30 in steps of 3 for each launch window
KAREUS_GRID = ["serial"] + [f"{w}/sms={n}" for w in ("window0-99", "window0-2", "window2-99")
                            for n in range(3, 31, 3)]
CASES = [("llama-3.2-3b-tp8", "a100-sxm", "default"), ("qwen3-1.7b-tp8", "a100-sxm", "default"),
         ("gpt-1.3b-tp4", "h100-sxm", "default"), ("llama-3.2-3b-tp8", "a100-sxm", "kareus"),
         ("qwen3-1.7b-tp8", "a100-sxm", "kareus"), ("llama-3.2-3b-tp8", "a100-sxm", "kareus-grid"),
         ("qwen3-1.7b-tp8", "a100-sxm", "kareus-grid")]


def case_profile(preset: str, gpu: str, options: str, layers: int | None):
    """(Profile, Partitioning) of ``preset`` split in 2 nanobatches on the simulated ``gpu``."""
    from gearshift.devices.sim import SimDevice
    from gearshift.model import Partitioning
    from gearshift.partition import partition
    from gearshift.profile import candidate_freqs, profile_partitions
    from gearshift.trace import trace_preset

    dev = SimDevice(gpu)
    trace = trace_preset(preset, nanobatches=2, **({"layers": layers} if layers else {}))
    parts = partition(trace, switch_latency_s=dev.capabilities.switch_latency_s)
    if options == "default":
        return profile_partitions(trace, parts, dev, progress=False), parts
    phase_cuts = [i for i in range(1, len(trace))
                  if trace.kernels[i].phase != trace.kernels[i - 1].phase]
    parts = Partitioning.from_cuts(trace, sorted(set(parts.boundaries()) | set(phase_cuts)),
                                   strategy="auto+phase")
    freqs = candidate_freqs(dev.facts, min_freq_mhz=900, step_mhz=30)
    overlaps = KAREUS_GRID if options == "kareus-grid" else KAREUS_OVERLAPS
    return profile_partitions(trace, parts, dev, freqs_mhz=freqs, overlaps=overlaps,
                              progress=False), parts


def front_ref(fr):
    return (fr.time_s[-1] + 0.1 * (fr.time_s[-1] - fr.time_s[0]) + 1e-12,
            fr.energy_j[0] + 0.1 * (fr.energy_j[0] - fr.energy_j[-1]) + 1e-12)


def plan_check(it_exact, it_claim, sampled, truth, t_target: float) -> dict:
    """The plan with the least claimed energy within ``t_target``, run: its true energy against
    the exhaustive least energy at its true time, its true time against ``t_target``, and how
    far its claimed time or energy is from its true one."""
    ok = np.flatnonzero(it_claim.time_s <= t_target * (1 + 1e-9))
    k = int(ok[np.argmin(it_claim.energy_j[ok])]) if ok.size else 0
    picks = [fr.options[c] for fr, c in zip(sampled, it_claim.choices(k))]
    t_run = sum(tab[o][0] for tab, o in zip(truth, picks))
    e_run = sum(tab[o][1] for tab, o in zip(truth, picks))
    e_exact = it_exact.energy_j[it_exact.time_s <= max(t_run, t_target) * (1 + 1e-9)].min()
    return {"energy_rel": e_run / e_exact - 1, "time_rel": t_run / t_target - 1,
            "claim_error": max(abs(it_claim.time_s[k] / t_run - 1),
                               abs(it_claim.energy_j[k] / e_run - 1))}


def evaluate(profile, fraction: float) -> dict:
    exact = profile_frontiers(profile, energy_includes_static=True)
    started = time.perf_counter()
    sampled, report = sampled_frontiers(profile, exact, fraction, energy_includes_static=True)
    seconds = time.perf_counter() - started
    truth = [{(o.freq_mhz, o.overlap): (o.time_s, o.energy_j) for o in opts}
             for opts in profile.by_partition()]
    oracle, scored = [], []
    for ex, r, fr, tab in zip(exact, report, sampled, truth):
        ref = front_ref(ex)
        reach = best_subset_hypervolumes(ex.time_s, ex.energy_j, ref, r["measured"])
        oracle.append(reach[-1] / hypervolume(ex.time_s, ex.energy_j, ref))
        t_true = [tab[o][0] for o in fr.options]
        e_true = [tab[o][1] for o in fr.options]
        st, se = scored_points(fr.time_s, fr.energy_j, t_true, e_true)
        scored.append(frontier_from_points(fr.partition, fr.options, st, se))
    it_exact, it_scored = compose(exact), compose(scored)
    ref = front_ref(it_exact)
    it_hv = hypervolume(it_scored.time_s, it_scored.energy_j, ref) / \
        hypervolume(it_exact.time_s, it_exact.energy_j, ref)
    # plans: least CLAIMED energy within a time (predicted points at their predictions), run
    it_claim = compose(sampled)
    t_fast = it_exact.time_s[0]
    fast = plan_check(it_exact, it_claim, sampled, truth, t_fast)
    slow = plan_check(it_exact, it_claim, sampled, truth, 1.05 * t_fast)
    hv = [r["hv_frac"] for r in report]
    hs = [r["hv_space_frac"] for r in report]
    return {"partitions": len(report), "options": [r["options"] for r in report],
            "measured_frac_max": max(r["measured_frac"] for r in report),
            "hv_front": (min(hv), float(np.median(hv)), max(hv)),
            "hv_space": (min(hs), float(np.median(hs)), max(hs)),
            "oracle_front_min": min(oracle),
            "met_99": sum(h >= 0.99 for h in hv),
            "reachable_99": sum(r["needed_99"] <= r["measured"] for r in report),
            "need99": [r["needed_99"] for r in report],
            "iteration_hv_front": it_hv,
            "iteration_energy_at_fastest_rel": fast["energy_rel"],
            "iteration_fastest_time_gap": fast["time_rel"],
            "iteration_energy_at_5pct_rel": slow["energy_rel"],
            "plan_claim_error": max(fast["claim_error"], slow["claim_error"]),
            "seconds_per_partition": seconds / len(report), "report": report}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.15])
    ap.add_argument("--quick", action="store_true",
                    help="llama-3.2-3b-tp8 only, 4 layers, default options")
    ap.add_argument("--layers", type=int, default=None, help="layers of every model")
    ap.add_argument("--per-partition", action="store_true", help="also one line per partition")
    ap.add_argument("--case", type=int, action="append", choices=range(len(CASES)),
                    help="only these cases (0-based, in the docstring's order)")
    args = ap.parse_args(argv)
    cases = [CASES[i] for i in args.case] if args.case else CASES[:1] if args.quick else CASES
    layers = 4 if args.quick and args.layers is None else args.layers
    print("partition sampling (GP + EHVI, `gearshift plan --sample`) on SIMULATED GPUs; "
          "hypervolume as a fraction of the exhaustive frontier's, min/median/max over partitions")
    print(f"{'case':34s} {'budget':>6s} {'parts':>5s} {'opts':>5s} {'meas%max':>8s} | "
          f"{'HV front min/med/max':>22s} {'oracle':>6s} | {'HV space min/med/max':>22s} | "
          f"{'>=99%':>5s} {'reach':>5s} | {'iter HV':>7s} {'E@fast':>7s} {'dT fast':>7s} {'E@+5%':>7s} {'claim':>6s} | s/part")
    for preset, gpu, options in cases:
        profile, _ = case_profile(preset, gpu, options, layers)
        name = f"{preset} {gpu} {options}"
        for frac in args.fractions:
            r = evaluate(profile, frac)
            opts = r["options"]
            print(f"{name:34s} {frac:6.0%} {r['partitions']:5d} {int(np.median(opts)):5d} "
                  f"{r['measured_frac_max']:8.1%} | "
                  + " ".join(f"{v:6.2%}" for v in r["hv_front"])
                  + f" {r['oracle_front_min']:6.2%} | "
                  + " ".join(f"{v:6.2%}" for v in r["hv_space"])
                  + f" | {r['met_99']:2d}/{r['partitions']:<2d} {r['reachable_99']:2d}/"
                  f"{r['partitions']:<2d} | {r['iteration_hv_front']:7.2%} "
                  f"{r['iteration_energy_at_fastest_rel']:+7.2%} "
                  f"{r['iteration_fastest_time_gap']:+7.3%} "
                  f"{r['iteration_energy_at_5pct_rel']:+7.2%} {r['plan_claim_error']:6.2%} | "
                  f"{r['seconds_per_partition']:.1f}",
                  flush=True)
            if args.per_partition:
                for p in r["report"]:
                    print(f"    partition {p['partition']}: {p['measured']}/{p['options']} "
                          f"measured ({p['measured_frac']:.1%}, {p['method']}), HV front "
                          f"{p['hv_frac']:.2%}, space {p['hv_space_frac']:.2%}; "
                          f"{p['predicted']} predicted points, max error "
                          f"{p['pred_err_max']:.2%}; measured-only 99 % needs >= "
                          f"{p['needed_99']}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
