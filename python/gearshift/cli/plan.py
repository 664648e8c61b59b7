"""``gearshift plan``: the pipeline time-energy frontier of a stage profile and a selected plan.

Contract (other tools rely on it)::

    gearshift plan --stage-profile PROFILE.csv --pipeline 1f1b --stages S --microbatches N \\
        [--virtual-stages V] --blocking-power-w P --frontier-out FRONTIER.csv \\
        [--select iso-time | --select max-slowdown=1.05] --plan-out PLAN.csv

FRONTIER.csv: ``time_s,energy_j``; PLAN.csv: ``stage,instruction,microbatch,freq_mhz``, one row
per computation of the selected point. Times and energies are in the profile's units (after
--time-scale/--energy-scale).

Single GPU (the files of ``gearshift profile`` and ``gearshift partition``)::

    gearshift plan --profile profile.json --partitioning partitioning.json --trace trace.json \
        [--select iso-time] --frontier-out frontier.json --schedule-out schedule.json
"""

from __future__ import annotations

import click

from ._common import (
    energy_scale_option,
    preset_option,
    pipeline_kind,
    pipeline_kind_option,
    time_scale_option,
    virtual_stages_option,
)


@click.command(name="plan")
@click.option("--stage-profile", "stage_profile", type=click.Path(dir_okay=False),
              help="Pipeline: CSV stage,instruction,frequency,time,energy (one microbatch, one GPU).")
@pipeline_kind_option
@click.option("--stages", type=int, help="Pipeline: number of stages (ranks, GPUs) S.")
@virtual_stages_option
@click.option("--microbatches", type=int, help="Pipeline: microbatches per iteration N.")
@click.option("--blocking-power-w", type=float,
              help="Pipeline: power of one stage while it waits, charged per idle second (W).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False),
              help="Single GPU: a profile file of `gearshift profile` (instead of --stage-profile).")
@click.option("--partitioning", "partitioning_path", type=click.Path(dir_okay=False),
              help="Single GPU: the partitioning the profile was made for.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False),
              help="Single GPU: the kernel trace (its signature binds the schedule to the model).")
@click.option("--schedule-out", type=click.Path(dir_okay=False), default=None,
              help="Single GPU: write the selected schedule here (JSON).")
@click.option("--frontier-out", type=click.Path(dir_okay=False), default=None,
              help="Write the frontier here (CSV time_s,energy_j; .json: with the baseline).")
@click.option("--select", "selection", default="iso-time", show_default=True,
              help="Objective: iso-time | fastest | iso-energy | max-slowdown=X | deadline=T "
                   "(seconds) | cost=ETA (gearshift.objective).")
@click.option("--plan-out", type=click.Path(dir_okay=False), default=None,
              help="Write the selected plan here (CSV stage,instruction,microbatch,freq_mhz).")
@time_scale_option
@energy_scale_option
@click.option("--points", type=click.IntRange(2, 10000), default=32, show_default=True,
              help="Iteration times the first sweep solves.")
@click.option("--passes", type=click.IntRange(0, 50), default=3, show_default=True,
              help="Refinement passes over the whole frontier.")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=5e-3, show_default=True,
              help="Stop refining when a pass improves no point by more than this fraction.")
@click.option("--polish-s", "polish_s", type=click.FloatRange(0, None), default=None,
              help="Pipeline: nominal CPU seconds to polish the selected point (window and "
                   "band MILPs, docs/search.md). The work is counted, not timed, so the plan "
                   "is the same on every run. Default: 10 up to 512 computations, else 0 (off).")
@click.option("--sample", "sample", type=click.FloatRange(0, None), default=None,
              help="Single GPU: measure only this fraction (< 1) or count of each partition's "
                   "options, picked by GP/expected-hypervolume search (default 0.15 for a "
                   "measured profile, off for a simulated one; 0 = off). The frontiers also "
                   "hold the unmeasured options the surrogates confidently predict on them.")
@click.option("--baselines-trace", "baselines_trace", type=click.Path(dir_okay=False),
              default=None,
              help="Single GPU: the step traced without nanobatches; prints baselines (a)-(d) "
                   "side by side, simulated on --preset (with --trace, the planned trace).")
@preset_option
@click.option("--quiet", is_flag=True, help="Only the result lines.")
def plan(stage_profile, kind, stages, virtual_stages, microbatches, blocking_power_w, profile_path,
         partitioning_path, trace_path, schedule_out, frontier_out, selection, plan_out,
         time_scale, energy_scale, points, passes, tolerance, polish_s, sample, baselines_trace,
         sim_preset, quiet):
    """Search the time-energy frontier and select a plan: of a pipeline (--stage-profile) or of
    one GPU's iteration (--profile).

    Last line: time_s=<float> energy_j=<float> of the selected plan, re-scored exactly."""
    import time

    from ..errors import ConfigError
    from ..objective import Objective

    selection = str(Objective.parse(selection))   # a bad objective fails before any file is read
    if (stage_profile is None) == (profile_path is None):
        raise ConfigError("give either --stage-profile (a pipeline) or --profile (one GPU)",
                          "see `gearshift plan --help`")
    if polish_s is not None and stage_profile is None:
        raise ConfigError("--polish-s polishes a pipeline plan",
                          "drop --polish-s, or plan a pipeline with --stage-profile")
    if profile_path is not None:
        _plan_single_gpu(profile_path, partitioning_path, trace_path, selection, frontier_out,
                         schedule_out, quiet, sample, baselines_trace, sim_preset)
        return
    missing = [n for n, v in (("--stages", stages), ("--microbatches", microbatches),
                              ("--blocking-power-w", blocking_power_w)) if v is None]
    if missing:
        raise ConfigError(f"a pipeline plan needs {', '.join(missing)}",
                          "pass the pipeline's shape and one stage's blocking power")

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..pipeline import load_stage_profile
    from ..search.pipeline_plan import plan_pipeline

    kind = pipeline_kind(kind)
    if frontier_out is None and plan_out is None:
        raise ConfigError("nothing to write", "pass --frontier-out and/or --plan-out")
    profile = load_stage_profile(stage_profile, time_scale, energy_scale)

    err = Console(stderr=True, quiet=quiet)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=err, transient=True,
                  disable=quiet) as bar:
        task = bar.add_task("sweep", total=None)

        def progress(stage, done, total):
            bar.update(task, description=stage, completed=done, total=total)

        def on_pass(rep):
            err.print(f"refine pass {rep.index}: {rep.points} new times, quantum "
                      f"{rep.time_quantum_s:.4g} s, best gain {rep.gain_rel:.3%}")

        res = plan_pipeline(profile, kind, stages, microbatches, blocking_power_w, selection,
                            points=points, passes=passes, tol=tolerance, progress=progress,
                            on_pass=on_pass, virtual_stages=virtual_stages, polish_s=polish_s)
    elapsed = time.perf_counter() - started
    if frontier_out:
        res.frontier.save(frontier_out)
    if plan_out:
        res.plan.save(plan_out)
    base, got = res.baseline, res.result
    if not quiet:
        v = res.search.problem.virtual_stages
        click.echo(f"{kind} pipeline, {stages} stages" + (f" x {v} virtual" if v > 1 else "") +
                   f" x {microbatches} microbatches, blocking "
                   f"{blocking_power_w:g} W/stage; energy = computation + blocking (simulated "
                   f"from the profile)")
        click.echo(f"all-max clocks : time {base.time_s:.6g} s, energy {base.energy_j:.6g} J")
        click.echo(f"frontier       : {len(res.frontier)} points, {res.frontier.points[0].time_s:.6g}"
                   f"..{res.frontier.points[-1].time_s:.6g} s, searched in {elapsed:.2f} s")
        click.echo(f"selected ({res.selection}): time {got.time_s:.6g} s "
                   f"({got.time_s / base.time_s - 1:+.2%}), energy {got.energy_j:.6g} J "
                   f"({-res.saving:+.2%} vs all-max)")
        if frontier_out:
            click.echo(f"wrote frontier {frontier_out}")
        if plan_out:
            click.echo(f"wrote plan {plan_out}")
    click.echo(got.line())


def _plan_single_gpu(profile_path, partitioning_path, trace_path, selection, frontier_out,
                     schedule_out, quiet, sample=None, baselines_trace=None,
                     sim_preset=None) -> None:
    from ..errors import ConfigError
    from ..model import KernelTrace, Partitioning, Profile
    from ..search.iteration import plan_iteration

    if partitioning_path is None:
        raise ConfigError("--profile needs --partitioning (the cut the profile was made for)",
                          "pass the partitioning file of `gearshift partition`")
    if frontier_out is None and schedule_out is None:
        raise ConfigError("nothing to write", "pass --frontier-out and/or --schedule-out")
    prof, parts = Profile.load(profile_path), Partitioning.load(partitioning_path)
    signature = parts.trace_signature
    trace = None
    if trace_path is not None:
        trace = KernelTrace.load(trace_path)
        parts.check_trace(trace)
        signature = trace.signature()
    if baselines_trace is not None and trace is None:
        raise ConfigError("--baselines-trace needs --trace (the trace the profile was made for)",
                          "pass --trace as well")
    if sample is None:
        sample = 0.15 if prof.source == "measured" else 0.0
    point_a = None
    if baselines_trace is not None:     # select against (a), what runs without gearshift
        from ..profile.options import FRAMEWORK_OVERLAP
        from ..search.baselines import top_clock_point
        from ..model import Overlap

        a = top_clock_point(KernelTrace.load(baselines_trace),
                            _baseline_device(prof, sim_preset), Overlap.parse(FRAMEWORK_OVERLAP))
        point_a = (a.time_s, a.energy_j)
    frontier, schedule = plan_iteration(prof, parts, signature, prof.device.name,
                                        objective=selection, sample_budget=sample or None,
                                        nanobatches=trace.nanobatches if trace else 1,
                                        baseline_point=point_a)
    if frontier_out:
        frontier.save(frontier_out)
    if schedule_out:
        schedule.save(schedule_out)
    pred = schedule.predicted
    if not quiet:
        base_t, base_e = pred.get("baseline_time_s"), pred.get("baseline_energy_j")
        click.echo(f"{len(parts)} partitions on {prof.device.name} ({prof.source} profile); "
                   f"frontier of {len(frontier)} points")
        if base_t and base_e:
            click.echo(f"all-max clocks : time {base_t:.6g} s, energy {base_e:.6g} J")
            click.echo(f"selected ({selection}): time {pred['time_s']:.6g} s "
                       f"({pred['time_s'] / base_t - 1:+.2%}), energy {pred['energy_j']:.6g} J "
                       f"({pred['energy_j'] / base_e - 1:+.2%})")
        for row in frontier.meta.get("sampling", []):
            click.echo(f"partition {row['partition']}: measured {row['measured']} of "
                       f"{row['options']} options ({row['measured_frac']:.1%}, {row['method']}), "
                       f"hypervolume {row['hv_frac']:.2%} of exhaustive (option space: "
                       f"{row['hv_space_frac']:.2%}); {row['predicted']} predicted points, "
                       f"max error {row['pred_err_max']:.2%} against the profile; measured "
                       f"points alone need >= {row['needed_99']} for 99 %")
        sel = frontier.meta.get("sampling_selected")
        if sel:
            click.echo(f"selected plan: {sel['predicted_choices']} of {len(parts)} partitions at "
                       f"predicted options; on the profile it takes time "
                       f"{sel['profile_time_s']:.6g} s ({sel['claimed_time_s'] / sel['profile_time_s'] - 1:+.3%} "
                       f"claimed), energy {sel['profile_energy_j']:.6g} J "
                       f"({sel['claimed_energy_j'] / sel['profile_energy_j'] - 1:+.3%} claimed)")
        if baselines_trace is not None:
            _print_baselines(baselines_trace, trace, prof, frontier, sim_preset)
        for path, what in ((frontier_out, "frontier"), (schedule_out, "schedule")):
            if path:
                click.echo(f"wrote {what} {path}")
    click.echo(f"time_s={pred['time_s']!r} energy_j={pred['energy_j']!r}")


def _baseline_device(prof, sim_preset):
    from ..devices.sim import SimDevice
    from ..errors import ConfigError

    dev = SimDevice(sim_preset or "a100-sxm")
    if dev.facts.name != prof.device.name:
        raise ConfigError(f"the profile is of {prof.device.name}, --preset gives {dev.facts.name}",
                          "pass the --preset the profile was simulated on")
    return dev


def _print_baselines(baselines_trace, trace, prof, frontier, sim_preset) -> None:
    from ..model import KernelTrace
    from ..search import baselines as bl

    dev = _baseline_device(prof, sim_preset)
    trace_a = KernelTrace.load(baselines_trace)
    freqs = sorted({e.freq_mhz for e in prof.entries}, reverse=True)
    base = bl.compare(trace_a, trace, dev, freqs, plan_d=frontier)
    click.echo(bl.table(base))
    for line in bl.savings_lines(base):
        click.echo(line)
