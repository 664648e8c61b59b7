"""``gearshift sim``: the simulated GPU's pipeline executor and its validation report."""

from __future__ import annotations

import click

from ._common import (
    energy_scale_option,
    pipeline_kind,
    pipeline_kind_option,
    virtual_stages_option,
    time_scale_option,
)


@click.group(name="sim")
def sim():
    """The simulated GPU: pipeline execution and validation (every figure is simulated)."""


@sim.command(name="pipeline")
@click.option("--stage-profile", "stage_profile", required=True, type=click.Path(dir_okay=False),
              help="CSV stage,instruction,frequency,time,energy (one microbatch, one GPU).")
@click.option("--plan", "plan_path", required=True, type=click.Path(dir_okay=False),
              help="CSV stage,instruction,microbatch,freq_mhz (one row per computation).")
@pipeline_kind_option
@click.option("--stages", type=int, required=True, help="Number of pipeline stages (ranks) S.")
@virtual_stages_option
@click.option("--microbatches", type=int, required=True, help="Microbatches per iteration N.")
@click.option("--blocking-power-w", type=float, required=True,
              help="Power of one stage's GPU while it waits, charged for its idle seconds.")
@time_scale_option
@energy_scale_option
@click.option("--p2p-s", type=float, default=0.0, show_default=True,
              help="Point-to-point transfer time added on every edge between stages.")
def pipeline(stage_profile, plan_path, kind, stages, virtual_stages, microbatches,
             blocking_power_w, time_scale, energy_scale, p2p_s):
    """Iteration time and energy of a frequency plan; last line: time_s=<float> energy_j=<float>."""
    from ..errors import ConfigError
    from ..pipeline import PipelinePlan, load_stage_profile
    from ..pipeline.executor import execute_graph, graph_for
    from ..pipeline.order import check_shape

    kind = pipeline_kind(kind)
    check_shape(stages, microbatches)
    if not p2p_s >= 0:
        raise ConfigError(f"--p2p-s {p2p_s} is negative", "pass a transfer time >= 0")
    graph = graph_for(kind, stages, microbatches, virtual_stages)
    profile = load_stage_profile(stage_profile, time_scale, energy_scale)
    plan = PipelinePlan.load(plan_path, graph.stages, microbatches)
    res = execute_graph(profile, plan, graph, blocking_power_w, p2p_s)
    shape = f"{stages} stages" + (f" x {graph.stages // stages} virtual" if graph.stages > stages
                                  else "")
    click.echo(f"simulated {kind} pipeline, {shape} x {microbatches} microbatches: "
               f"compute {res.compute_energy_j:.6g} J + blocking {res.blocking_energy_j:.6g} J")
    click.echo(res.line())


def _find_data(data: str | None):
    """The folder holding perseus_a40/: --data, else the shared data, else the shipped copy."""
    from pathlib import Path  # noqa: PLC0415

    from ..datasets import data_root  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415

    root = data_root("perseus_a40", data)
    if not (Path(root) / "perseus_a40").is_dir():
        raise ConfigError(f"the Perseus A40 data (perseus_a40/) is not in {root}",
                          "pass --data DIR (the folder holding perseus_a40/), or leave --data "
                          "out to use the copy shipped with gearshift")
    return Path(root)


@sim.command(name="validate")
@click.option("--data", default=None, help="Folder holding perseus_a40/ (default: ../shared/data "
              "when present, else the copy shipped with gearshift).")
@click.option("--refit", is_flag=True, help="Re-run the A40 kernel-model fit (about 15 s) "
              "instead of using the fitted parameters shipped in devices/sim/fitted.py.")
def validate(data, refit):
    """Fidelity of the simulator against measured A40 data (targets from issue #3)."""
    from ..devices.sim.calibration import fit_a40, load_targets, shape_errors  # noqa: PLC0415
    from ..devices.sim.fitted import A40_WORKLOAD  # noqa: PLC0415
    from ..devices.sim.presets import PRESETS, get_preset  # noqa: PLC0415
    from ..pipeline.replay import pooled, validate as replay  # noqa: PLC0415

    root = _find_data(data)
    click.echo("(a) pipeline replay of the measured A40 runs (perseus_a40/experiments)")
    click.echo("    fit on even plans, scored on odd plans; per model:")
    results = replay(root / "perseus_a40" / "experiments")
    for r in results:
        click.echo(f"    {r.model:18s} test plans {len(r.test_plans):2d}  "
                   f"time MAPE {100 * r.time_mape:5.2f}%  energy MAPE {100 * r.energy_mape:5.2f}%"
                   f"  (p2p {1e3 * r.fit.p2p_s:.1f} ms, overhead {r.fit.overhead_s:.2f} s + "
                   f"{r.fit.clock_overhead_s:.2f} s x f_max/f_mean, "
                   f"P_block {r.fit.blocking_power_w:.1f} W)")
    t_mape, e_mape = pooled(results)
    ok_a = t_mape <= 0.02 and e_mape <= 0.03
    click.echo(f"    pooled: time MAPE {100 * t_mape:.2f}% (target <= 2%), energy MAPE "
               f"{100 * e_mape:.2f}% (target <= 3%)  {'PASS' if ok_a else 'FAIL'}")

    click.echo("(b) A40 stage-profile shape from the simulated GPT layer stack "
               "(perseus_a40/stage_profile, 60 clocks 855-1740 MHz)")
    targets = load_targets(root / "perseus_a40" / "stage_profile")
    if refit:
        fitted, ew, preset = fit_a40(PRESETS["a40"], targets)
        click.echo("    refitted parameters: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.items()))
        click.echo("    workload knobs: " + ", ".join(f"{m}/{p}={v:.3g}" for (m, p), v in ew.items()))
    else:
        preset, ew = get_preset("a40"), A40_WORKLOAD
    errs = shape_errors(preset, targets, ew)
    for model, e in errs.items():
        if model == "pooled":
            continue
        click.echo(f"    {model:18s} time(f)/time(fmax) MAPE {100 * e['time_mape']:5.2f}%  "
                   f"energy(f)/energy(fmax) MAPE {100 * e['energy_mape']:5.2f}%  "
                   f"(max {100 * e['time_max_err']:.1f}% / {100 * e['energy_max_err']:.1f}%)")
    pt, pe = errs["pooled"]["time_mape"], errs["pooled"]["energy_mape"]
    ok_b = pt <= 0.03 and pe <= 0.03
    click.echo(f"    pooled: time-ratio MAPE {100 * pt:.2f}%, energy-ratio MAPE {100 * pe:.2f}% "
               f"(target <= 3%)  {'PASS' if ok_b else 'FAIL'}")
    click.echo("all figures are simulated or replayed, GPU energy only (no CPU/DRAM/node)")
    click.echo(f"replay_time_mape={t_mape!r} replay_energy_mape={e_mape!r} "
               f"shape_time_mape={pt!r} shape_energy_mape={pe!r}")
    if not (ok_a and ok_b):
        raise SystemExit(1)


@sim.command(name="run")
@click.option("--trace", "trace_path", required=True, type=click.Path(dir_okay=False),
              help="Kernel trace (gearshift.kernel_trace JSON).")
@click.option("--partitioning", "part_path", type=click.Path(dir_okay=False),
              help="Partitioning JSON (default: the whole trace as one partition).")
@click.option("--schedule", "sched_path", type=click.Path(dir_okay=False),
              help="Schedule JSON: each partition's clock and overlap (needs --partitioning).")
@click.option("--freq", "freq_mhz", type=int, default=None,
              help="Run every partition at this SM clock (default: the preset's maximum).")
@click.option("--overlap", default="serial", show_default=True,
              help="Overlap for every partition with --freq: serial, start, afterK[/sms=N].")
@click.option("--preset", default=None, help="h100-sxm, a100-sxm or a40 (GEARSHIFT_SIM_PRESET).")
@click.option("--switch-latency-ms", type=float, default=None,
              help="Clock-switch latency (default: the preset's).")
@click.option("--kernels-csv", type=click.Path(dir_okay=False),
              help="Write every kernel's simulated start/end to this CSV.")
def run_cmd(trace_path, part_path, sched_path, freq_mhz, overlap, preset, switch_latency_ms,
            kernels_csv):
    """Run one iteration of a trace on the simulated GPU; last line: time_s=... energy_j=..."""
    import csv  # noqa: PLC0415

    from ..devices import open_device  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415
    from ..model import KernelTrace, Overlap, Partitioning, Schedule  # noqa: PLC0415

    trace = KernelTrace.load(trace_path)
    part = Partitioning.load(part_path) if part_path else \
        Partitioning.from_cuts(trace, [0], ["all"], strategy="whole")
    dev = open_device("sim", preset=preset)
    n = len(part.partitions)
    if sched_path:
        if not part_path:
            raise ConfigError("--schedule needs the --partitioning it was made for",
                              "pass --partitioning PART.json")
        sched = Schedule.load(sched_path)
        if len(sched.entries) != n:
            raise ConfigError(f"the schedule has {len(sched.entries)} entries, the partitioning "
                              f"{n} partitions", "pass the partitioning the schedule was made for")
        choices = [(e.freq_mhz, e.overlap) for e in sched.entries]
    else:
        try:
            ov = Overlap.parse(overlap)
        except ValueError as exc:
            raise ConfigError(str(exc), "use serial, start, afterK, optionally /sms=N") from exc
        choices = [(freq_mhz or dev.preset.max_freq_mhz, ov)] * n
    latency = None if switch_latency_ms is None else switch_latency_ms / 1e3
    # steady state: one warm-up iteration leaves the clocks where a training loop has them
    dev.run_iteration(trace, part, choices, switch_latency_s=latency)
    res = dev.run_iteration(trace, part, choices, switch_latency_s=latency)
    click.echo(f"simulated {dev.preset.name}: {len(trace)} kernels, {n} partitions, "
               f"{res.num_switches} clock switches (latency {1e3 * res.meta['switch_latency_s']:g} "
               "ms); steady state after one warm-up iteration; GPU energy only")
    click.echo("(eff: the clock under the power limit; a partition shorter than the switch "
               "latency runs partly at the previous clock)")
    click.echo(f"{'part':>5} {'label':24s} {'MHz':>5} {'eff':>5} {'overlap':>12} "
               f"{'time_ms':>10} {'energy_j':>10}")
    shown = list(range(n)) if n <= 40 else list(range(20)) + list(range(n - 10, n))
    for i in shown:
        if n > 40 and i == n - 10:
            click.echo(f"{'...':>5}")
        p = part.partitions[i]
        click.echo(f"{i:5d} {p.label[:24]:24s} {res.partition_freq_mhz[i]:5d} "
                   f"{res.partition_eff_freq_mhz[i]:5d} {str(choices[i][1]):>12} "
                   f"{1e3 * res.partition_time_s[i]:10.4f} {res.partition_energy_j[i]:10.4f}")
    click.echo(f"static {res.static_energy_j:.6g} J + dynamic {res.dynamic_energy_j:.6g} J + "
               f"switches {res.switch_energy_j:.6g} J")
    if kernels_csv:
        with open(kernels_csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["kernel", "name", "partition", "start_s", "end_s"])
            for i, k in enumerate(trace.kernels):
                w.writerow([i, k.name, int(dev.timeline(trace, part).part_of[i]),
                            repr(float(res.kernel_start_s[i])), repr(float(res.kernel_end_s[i]))])
    click.echo(f"time_s={res.time_s!r} energy_j={res.energy_j!r}")


@sim.command(name="overlap-validate")
@click.option("--fit", "fit_path", default=None, type=click.Path(dir_okay=False),
              help="Measured overlap CSV to fit on, clocks unlocked (Kareus energy_results.csv "
              "columns; default: the shipped kareus_a100_attn data).")
@click.option("--test", "test_path", required=True, type=click.Path(dir_okay=False),
              help="Measured overlap CSV to predict, same columns.")
@click.option("--test-clock-mhz", type=int, default=None,
              help="SM clock TEST was measured at (locked); default: clocks unlocked.")
def overlap_validate(fit_path, test_path, test_clock_mhz):
    """Fit the communication/contention model on FIT, predict TEST (simulated A100).

    Last line: time_mape_pct=<float> energy_mape_pct=<float> pick_gap_pct=<float>."""
    import numpy as np  # noqa: PLC0415

    from ..devices.sim import calibration_overlap as co  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415

    preset = co.base_a100()
    if test_clock_mhz is not None and test_clock_mhz not in preset.freqs_mhz:
        raise ConfigError(f"--test-clock-mhz {test_clock_mhz} is not a supported A100 SM clock",
                          f"pass a clock in {preset.min_freq_mhz}..{preset.max_freq_mhz} MHz "
                          "in 15 MHz steps (e.g. 1200)")
    fit_m = co.load_measured(fit_path or co.data_path())
    test_m = co.load_measured(test_path)
    click.echo(f"fitting the A100 kernel, communication and contention model on "
               f"{len(fit_m)} configurations, {len(fit_m.windows())} windows "
               f"({fit_path or 'shipped kareus_a100_attn'}, clocks unlocked) ...")
    _, p, q, b = co.fit(co.neutral(preset), fit_m)
    clock = "unlocked" if test_clock_mhz is None else f"{test_clock_mhz} MHz"
    s = co.scores(p, q, b, test_m, test_clock_mhz)
    t, e = s["time_s"], s["energy_j"]
    click.echo(f"predicted vs measured on {len(test_m)} configurations of {test_path} "
               f"(clock {clock}); energy = both GPUs, simulated vs measured (NVML)")
    click.echo(f"{'window':>7} {'n':>3} {'time MAPE':>9} {'energy MAPE':>11} "
               f"{'fastest measured':>22} {'model pick (measured)':>27} {'gap':>6}")
    for w in test_m.windows():
        sel = (test_m.launch_op == w[0]) & (test_m.complete_op == w[1])
        mt, me, pt, pe = test_m.time_s[sel], test_m.energy_j[sel], t[sel], e[sel]
        best, pick = int(np.argmin(mt)), int(np.argmin(pt))
        sms, blk = test_m.ctas[sel], test_m.block[sel]
        click.echo(f"{w[0]:>3},{w[1]:<3} {int(sel.sum()):3d} "
                   f"{100 * np.mean(np.abs(pt / mt - 1)):8.2f}% {100 * np.mean(np.abs(pe / me - 1)):10.2f}% "
                   f"{int(sms[best]):>5}/{int(blk[best]):<4} {1e3 * mt[best]:7.3f} ms   "
                   f"{int(sms[pick]):>5}/{int(blk[pick]):<4} {1e3 * pt[pick]:6.3f} "
                   f"({1e3 * mt[pick]:6.3f}) ms {100 * (mt[pick] / mt[best] - 1):5.2f}%")
    click.echo("(sms/block: CTAs and threads per block of the all-reduce; time per call)")
    click.echo(f"time_mape_pct={s['time_mape_pct']:.4f} energy_mape_pct={s['energy_mape_pct']:.4f} "
               f"pick_gap_pct={s['pick_gap_pct']:.4f}")
