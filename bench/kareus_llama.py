"""Kareus's headline setting on the simulated A100, ours next to its published numbers.

Llama-3.2-3B, tensor parallelism 8 (one rank's share), 2 pipeline stages x 8 microbatches,
1F1B, microbatch 8 x sequence 4096 (2 nanobatches of 4 for the nanobatched programs), as
Kareus's artifact runs it (tests/artifact/run_megatron.sh and
conf/megatron_llama3.2_3b_config.yaml in github.com/ml-energy/kareus: TP 8, MBS 8, SEQ 4096,
PP 2, 8 microbatches, ``num_layers_in_first_pipeline_stage: 15``). Each stage is traced and
profiled on its own: stage 0 is the embedding and 15 layers, stage 1 is 13 layers, the final
RMSNorm, the LM head (vocab 128256 / 8 per rank) and the loss. Pipelines are planned by the
pipeline planner (search/pipeline_plan.plan_pipeline, Perseus's problem) on stage profiles of
forward and backward instructions:

- Megatron+Perseus: the microbatch whole, collectives serial, one clock per instruction.
- nanobatching+Perseus: 2 nanobatches, default overlap (window0-99 on the library's SMs and
  block size), one clock per instruction.
- gearshift (partition clocks): 2 nanobatches, clock and overlap window / SM count per
  partition, partitions at least twice the 10 ms switch latency long; each instruction's
  options are its partitions' frontiers composed (search/compose.py), resampled to
  ``RESAMPLED`` points (the planner's option axis), fastest last. The composed points are
  settled-clock figures: the clock switches inside an instruction are not charged here.
- per-sublayer overlap, instruction clocks (Kareus's structure): one partition per collective
  (one nanobatch's collective beside the other's sublayer), the overlap chosen per partition,
  one clock per forward / backward instruction as Kareus's runtime sets it; no switch inside an
  instruction, so these points are exact (``instruction_clock_curves``).
- Megatron at max throughput: the first pipeline at all-max clocks, the planner's baseline.

Every dependency holds: each instruction's timeline is checked with
``timeline.dependency_violations`` at every profiled option of its fastest plan. All figures
are simulated (GPU energy + blocking power while a stage waits, Kareus's measured 85 W).

Run: ``python bench/kareus_llama.py [--stage-layers 15,13] [--quick] [--sample 0.15]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

KAREUS = {  # published (Kareus, Llama-3.2-3B, TP=8, A100-SXM4-40GB)
    "vs Megatron+Perseus: energy at iso-time": 23.08,
    "vs Megatron+Perseus: time at iso-energy": 18.90,
    "nanobatching+Perseus vs Megatron+Perseus: energy at iso-time": 16.23,
    "nanobatching+Perseus vs Megatron+Perseus: time at iso-energy": 12.05,
    "vs Megatron at max throughput: time": 13.70,
}
BLOCKING_W = 85.0          # Kareus: A100 power while waiting on point-to-point communication
MICROBATCHES = 8


RESAMPLED = 48             # options per gearshift instruction on the planner's option axis


STAGE_LAYERS = (15, 13)    # Kareus: num_layers_in_first_pipeline_stage 15 of 28
MICROBATCH = 8             # Kareus: micro_batch_size 8, sequence 4096


def stage_rows(curves: list, freqs) -> list[dict]:
    """Rows of a StageProfile: ``curves[s] = (times, energies)`` of stage s per instruction."""
    rows = []
    for s, (times, energies) in enumerate(curves):
        for instr in ("forward", "backward"):
            for k, f in enumerate(freqs):
                rows.append({"stage": s, "instruction": instr, "frequency": int(f),
                             "time": float(times[instr][k]), "energy": float(energies[instr][k])})
    return rows


def stage_traces(layers, nanobatches: int = 1) -> list:
    """The traces of the pipeline's stages: the first holds the embedding, the last the final
    norm, the LM head and the loss (trace/zoo.py ``pp_stage``)."""
    from gearshift.trace import trace_preset

    roles = ["first"] + ["middle"] * (len(layers) - 2) + ["last"]
    return [trace_preset("llama-3.2-3b-tp8", layers=n, pp_stage=r, batch=MICROBATCH,
                         nanobatches=nanobatches) for n, r in zip(layers, roles)]


def to_profile(rows):
    from gearshift.pipeline.stage_profile import COLUMNS, StageProfile  # noqa: F401
    import csv
    import io
    import tempfile

    from gearshift.pipeline import load_stage_profile

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["stage", "instruction", "frequency", "time", "energy"])
    w.writeheader()
    w.writerows(rows)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        fh.write(buf.getvalue())
        path = fh.name
    return load_stage_profile(path)


def phase_curves(trace, device, freqs, overlap):
    """Per-clock (time, energy) of the forward and backward instructions, ``overlap`` fixed."""
    from gearshift.search.baselines import phase_partitioning

    parts = phase_partitioning(trace)
    phases = [p.phase for p in parts.partitions]
    opts = [(int(f), overlap) for f in freqs]
    T, E = device.profile_options(trace, parts, opts)
    out_t, out_e = {}, {}
    for instr in ("forward", "backward"):
        cols = [j for j, ph in enumerate(phases) if ph == instr]
        out_t[instr], out_e[instr] = T[:, cols].sum(axis=1), E[:, cols].sum(axis=1)
    return out_t, out_e


def _profile_with_phase_cuts(trace, auto, strategy, device, freqs, overlaps):
    """``auto``'s cuts plus a cut at every forward/backward change (one instruction's clock
    never spans two), profiled under every clock and overlap option."""
    from gearshift.model import Partitioning
    from gearshift.profile import profile_partitions

    phase_cuts = [i for i in range(1, len(trace))
                  if trace.kernels[i].phase != trace.kernels[i - 1].phase]
    cuts = sorted(set(auto.boundaries()) | set(phase_cuts))
    parts = Partitioning.from_cuts(trace, cuts, strategy=strategy)
    return parts, profile_partitions(trace, parts, device, freqs_mhz=freqs, overlaps=overlaps,
                                     progress=False)


def gearshift_curves(trace, device, freqs, overlaps, sample_budget=None, points=RESAMPLED):
    """Per instruction, its partitions' frontiers composed, resampled to ``points`` points
    (slowest first, as the planner's clock axis runs)."""
    from gearshift.partition import partition
    from gearshift.search.compose import compose
    from gearshift.search.iteration import sampled_frontiers
    from gearshift.search.partition_frontier import profile_frontiers

    auto = partition(trace, switch_latency_s=device.capabilities.switch_latency_s)
    parts, prof = _profile_with_phase_cuts(trace, auto, "auto+phase", device, freqs, overlaps)
    fronts = profile_frontiers(prof, energy_includes_static=True)
    sampling = None
    if sample_budget:
        fronts, sampling = sampled_frontiers(prof, fronts, sample_budget,
                                             energy_includes_static=True)
    out_t, out_e = {}, {}
    for instr in ("forward", "backward"):
        sel = [fronts[p.index] for p in parts.partitions if p.phase == instr]
        comp = compose(sel)
        t, e = comp.time_s, comp.energy_j          # fastest first, energy falling
        # the planner's option axis: fastest at the top "clock"; len(freqs) points spread over
        # the composed frontier's time span (each the frontier point at or below that time)
        targets = np.linspace(t[0], t[-1], points)
        idx = np.clip(np.searchsorted(t, targets, side="right") - 1, 0, len(t) - 1)
        out_t[instr], out_e[instr] = t[idx][::-1], e[idx][::-1]
    return out_t, out_e, parts, prof, sampling


def instruction_clock_curves(trace, device, freqs, overlaps, points=RESAMPLED):
    """Kareus's structure: one partition per collective (a sublayer's compute of one nanobatch
    beside the other's collective; no switch latency to respect), the overlap
    chosen per partition, the clock one per forward / backward instruction (Kareus sets it per
    instruction at run time). No clock switch happens inside an instruction, so the points are
    exact. Per instruction and clock, the partitions' frontiers over their overlap options are
    composed; the union over clocks, Pareto-pruned and resampled, is the instruction's options.
    """
    from gearshift.partition import partition
    from gearshift.search.compose import compose
    from gearshift.search.partition_frontier import frontier_from_points, pareto_indices

    # a cut before every collective (and at phase changes): each partition is one nanobatch's
    # collective and the kernels after it up to the next collective, the other nanobatch's
    # sublayer in the interleaved trace, as Kareus defines its partitions
    auto = partition(trace, strategy="comm", min_partition_s=0.0)
    parts, prof = _profile_with_phase_cuts(trace, auto, "comm+phase", device, freqs, overlaps)
    by_part = prof.by_partition()
    out_t, out_e = {}, {}
    for instr in ("forward", "backward"):
        idx = [p.index for p in parts.partitions if p.phase == instr]
        ts, es = [], []
        for f in freqs:
            fr = []
            for i in idx:
                at = [o for o in by_part[i] if o.freq_mhz == int(f)]
                fr.append(frontier_from_points(i, [(o.freq_mhz, o.overlap) for o in at],
                                               [o.time_s for o in at], [o.energy_j for o in at]))
            comp = compose(fr)
            ts.append(comp.time_s)
            es.append(comp.energy_j)
        t, e = np.concatenate(ts), np.concatenate(es)
        keep = pareto_indices(t, e)
        t, e = t[keep], e[keep]                   # fastest first, energy falling
        targets = np.linspace(t[0], t[-1], points)
        sel = np.clip(np.searchsorted(t, targets, side="right") - 1, 0, len(t) - 1)
        out_t[instr], out_e[instr] = t[sel][::-1], e[sel][::-1]
    return out_t, out_e, parts, prof


def frontier_arrays(planning):
    f = planning.frontier
    return (np.array([p.time_s for p in f.points]), np.array([p.energy_j for p in f.points]))


def best_saving(base, ours, kind):
    bt, be = base
    t, e = ours
    best = None
    for T, E in zip(bt, be):
        if kind == "energy":
            ok = t <= T * (1 + 1e-9)
            s = 1 - e[ok].min() / E if ok.any() else None
        else:
            ok = e <= E * (1 + 1e-9)
            s = 1 - t[ok].min() / T if ok.any() else None
        if s is not None and (best is None or s > best):
            best = s
    return best


def check_dependencies(trace, parts, prof, device) -> int:
    """Violations over every profiled option of every partition (should be none)."""
    from gearshift.devices.sim.timeline import dependency_violations

    options = sorted({(e.freq_mhz, e.overlap) for e in prof.entries if e.overlap.mode != "none"})
    bad = 0
    deps = [k.deps for k in trace.kernels]
    for f, ov in options[:: max(1, len(options) // 12)]:
        res = device.run_iteration(trace, parts, [(f, ov if p.has_comm else type(ov)())
                                                  for p in parts.partitions],
                                   advance=False, switch_latency_s=0.0)
        bad += len(dependency_violations(deps, res.kernel_stream, res.kernel_start_s,
                                         res.kernel_end_s))
    return bad


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage-layers", default=",".join(map(str, STAGE_LAYERS)),
                    help="layers of each pipeline stage (default 15,13 as Kareus runs it)")
    ap.add_argument("--quick", action="store_true", help="fewer clocks and overlap options")
    ap.add_argument("--sample", type=float, default=None,
                    help="also plan gearshift from this fraction of options (GP/EHVI)")
    return ap.parse_args(argv)


def run(args) -> dict:
    """Plan, print the table, return every figure (fractions) for the bench harness."""
    from gearshift.devices.sim import SimDevice
    from gearshift.model import Overlap
    from gearshift.profile import candidate_freqs
    from gearshift.profile.options import FRAMEWORK_OVERLAP, NANOBATCH_DEFAULT_OVERLAP
    from gearshift.search.pipeline_plan import plan_pipeline
    t0 = time.perf_counter()
    dev = SimDevice("a100-sxm")
    freqs = candidate_freqs(dev.facts, min_freq_mhz=900, step_mhz=60 if args.quick else 30)
    overlaps = ["serial", "window0-99", "window0-99/sms=6", "window0-99/sms=12",
                "window0-99/sms=24", "window0-2", "window2-99", "window0-99/sms=12/block=512"]
    if args.quick:
        overlaps = overlaps[:4]
    layers = [int(x) for x in args.stage_layers.split(",")]
    stages = len(layers)
    traces_a = stage_traces(layers)
    traces_b = stage_traces(layers, nanobatches=2)
    asc = sorted(freqs)
    curves_a = [phase_curves(t, dev, asc, Overlap.parse(FRAMEWORK_OVERLAP)) for t in traces_a]
    curves_c = [phase_curves(t, dev, asc, Overlap.parse(NANOBATCH_DEFAULT_OVERLAP))
                for t in traces_b]
    curves_d, curves_k, violations, n_parts, n_parts_k = [], [], 0, [], []
    for t in traces_b:
        td, ed, parts, prof, _ = gearshift_curves(t, dev, asc, overlaps)
        curves_d.append((td, ed))
        violations += check_dependencies(t, parts, prof, dev)
        n_parts.append(len(parts))
        tk, ek, parts_k, prof_k = instruction_clock_curves(t, dev, asc, overlaps)
        curves_k.append((tk, ek))
        violations += check_dependencies(t, parts_k, prof_k, dev)
        n_parts_k.append(len(parts_k))
    plans = {}
    pseudo = list(range(1, RESAMPLED + 1))     # gearshift's options: frontier points, not clocks
    for name, (curves, axis) in {"megatron+perseus": (curves_a, asc),
                                 "nanobatch+perseus": (curves_c, asc),
                                 "gearshift": (curves_d, pseudo),
                                 "instruction-clock": (curves_k, pseudo)}.items():
        sp = to_profile(stage_rows(curves, axis))
        plans[name] = plan_pipeline(sp, "1f1b", stages, MICROBATCHES, BLOCKING_W, "iso-time",
                                    points=24, passes=2)
    fa, fc, fd, fk = (frontier_arrays(plans[k]) for k in
                      ("megatron+perseus", "nanobatch+perseus", "gearshift", "instruction-clock"))
    megatron_max = plans["megatron+perseus"].baseline
    ours = {
        "vs Megatron+Perseus: energy at iso-time": best_saving(fa, fd, "energy"),
        "vs Megatron+Perseus: time at iso-energy": best_saving(fa, fd, "time"),
        "nanobatching+Perseus vs Megatron+Perseus: energy at iso-time":
            best_saving(fa, fc, "energy"),
        "nanobatching+Perseus vs Megatron+Perseus: time at iso-energy":
            best_saving(fa, fc, "time"),
        "vs Megatron at max throughput: time": 1 - fd[0].min() / megatron_max.time_s,
    }
    extra = {"gearshift vs nanobatching+Perseus: energy at iso-time": best_saving(fc, fd, "energy"),
             "gearshift vs nanobatching+Perseus: time at iso-energy": best_saving(fc, fd, "time"),
             "per-sublayer overlap, instruction clocks vs Megatron+Perseus: energy at iso-time":
                 best_saving(fa, fk, "energy"),
             "per-sublayer overlap, instruction clocks vs Megatron+Perseus: time at iso-energy":
                 best_saving(fa, fk, "time"),
             "per-sublayer overlap, instruction clocks vs Megatron max throughput: time":
                 1 - fk[0].min() / megatron_max.time_s}
    print(f"Kareus setting on the simulated {dev.preset.name}: llama-3.2-3b-tp8, {stages} stages "
          f"x {MICROBATCHES} microbatches 1F1B, microbatch {MICROBATCH} x 4096, stage layers "
          f"{layers} (embedding on the first, norm/LM head/loss on the last), clocks "
          f"{asc[0]}-{asc[-1]} MHz ({len(asc)}), {len(overlaps)} overlap options, "
          f"partitions per stage {n_parts} (per-sublayer variant {n_parts_k}); SIMULATED GPU "
          f"energy + {BLOCKING_W:.0f} W blocking")
    print(f"{'figure (SIMULATED)':<82} {'ours %':>8} {'Kareus %':>9}")
    for k, v in ours.items():
        print(f"{k:<82} {'n/a' if v is None else f'{v * 100:8.2f}':>8} {KAREUS[k]:9.2f}")
    for k, v in extra.items():
        print(f"{k:<82} {'n/a' if v is None else f'{v * 100:8.2f}':>8} {'-':>9}")
    print(f"dependency violations over the profiled options: {violations}")
    shares = []
    for s_, tr in enumerate(traces_a):
        comm = np.array([k.kind == "comm" for k in tr.kernels])
        fwbw = np.array([k.phase in ("forward", "backward") for k in tr.kernels])
        step = dev.run_iteration(tr, advance=False)
        dur = step.kernel_end_s - step.kernel_start_s
        span = float(dur[fwbw].sum())
        shares.append(float(dur[comm & fwbw].sum() / span))
        print(f"Megatron stage {s_} forward+backward of one microbatch at 1410 MHz: collectives "
              f"{shares[-1]:.1%} of {span * 1e3:.1f} ms kernel time (what nanobatching can "
              f"hide at best)")
    comm_share = float(np.mean(shares))
    if args.sample:
        sampled, sampling = [], []
        for t in traces_b:
            ts, es, _, _, smp = gearshift_curves(t, dev, asc, overlaps,
                                                 sample_budget=args.sample)
            sampled.append((ts, es))
            sampling += smp
        sp = to_profile(stage_rows(sampled, pseudo))
        fs = frontier_arrays(plan_pipeline(sp, "1f1b", stages, MICROBATCHES, BLOCKING_W,
                                           "iso-time", points=24, passes=2))
        frac = sum(r["measured"] for r in sampling) / sum(r["options"] for r in sampling)
        hv = [r["hv_frac"] for r in sampling]
        hv_space = [r["hv_space_frac"] for r in sampling]
        print(f"GP/EHVI sampling at {args.sample:g}: {frac:.1%} of the options measured; "
              f"hypervolume reached per partition (frontier reference): min {min(hv):.2%}, "
              f"mean {np.mean(hv):.2%}; (option-space reference): min {min(hv_space):.2%}, "
              f"mean {np.mean(hv_space):.2%}")
        for r in sampling:
            print(f"  partition {r['partition']}: {r['measured']}/{r['options']} options, "
                  f"hypervolume {r['hv_frac']:.2%} (option space {r['hv_space_frac']:.2%})")
        print(f"sampled gearshift vs Megatron+Perseus: energy at iso-time "
              f"{best_saving(fa, fs, 'energy') * 100:.2f} %, time at iso-energy "
              f"{best_saving(fa, fs, 'time') * 100:.2f} % (exhaustive: "
              f"{ours['vs Megatron+Perseus: energy at iso-time'] * 100:.2f} / "
              f"{ours['vs Megatron+Perseus: time at iso-energy'] * 100:.2f} %)")
    print(f"pipeline all-max iteration: Megatron {megatron_max.time_s:.4f} s "
          f"{megatron_max.energy_j:.1f} J; fastest gearshift {fd[0].min():.4f} s")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    figures = {k: v for k, v in {**ours, **extra}.items() if v is not None}
    figures["dependency_violations"] = violations
    figures["comm_share"] = comm_share
    if args.sample:
        figures.update({"sampled_measured_frac": frac, "sampled_hv_min": min(hv),
                        "sampled_hv_mean": float(np.mean(hv)),
                        "sampled_hv_space_min": min(hv_space),
                        "sampled_hv_space_mean": float(np.mean(hv_space))})
    return figures


def main(argv=None) -> int:
    return 0 if run(parse(argv))["dependency_violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
