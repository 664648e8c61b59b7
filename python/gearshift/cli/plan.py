"""``gearshift plan``: the pipeline time-energy frontier of a stage profile and a selected plan.

Contract (other tools rely on it)::

    gearshift plan --stage-profile PROFILE.csv --pipeline 1f1b --stages S --microbatches N \\
        --blocking-power-w P --frontier-out FRONTIER.csv \\
        [--select iso-time | --select max-slowdown=1.05] --plan-out PLAN.csv

FRONTIER.csv: ``time_s,energy_j``; PLAN.csv: ``stage,instruction,microbatch,freq_mhz``, one row
per computation of the selected point. Times and energies are in the profile's units (after
--time-scale/--energy-scale).
"""

from __future__ import annotations

import click


@click.command(name="plan")
@click.option("--stage-profile", "stage_profile", required=True, type=click.Path(dir_okay=False),
              help="CSV stage,instruction,frequency,time,energy (one microbatch, one GPU).")
@click.option("--pipeline", "kind", default="1f1b", show_default=True, help="1f1b or gpipe.")
@click.option("--stages", type=int, required=True, help="Number of pipeline stages S.")
@click.option("--microbatches", type=int, required=True, help="Microbatches per iteration N.")
@click.option("--blocking-power-w", type=float, required=True,
              help="Power of one stage while it waits, charged for every idle second (W).")
@click.option("--frontier-out", type=click.Path(dir_okay=False), default=None,
              help="Write the frontier here (CSV time_s,energy_j; .json: with the baseline).")
@click.option("--select", "selection", default="iso-time", show_default=True,
              help="iso-time | fastest | iso-energy | max-slowdown=X | cost=ETA.")
@click.option("--plan-out", type=click.Path(dir_okay=False), default=None,
              help="Write the selected plan here (CSV stage,instruction,microbatch,freq_mhz).")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiply every profile time (Perseus's emulation uses 10).")
@click.option("--energy-scale", type=float, default=1.0, show_default=True,
              help="Multiply every profile energy (Perseus's emulation uses 80).")
@click.option("--points", type=click.IntRange(2, 10000), default=32, show_default=True,
              help="Iteration times the first sweep solves.")
@click.option("--passes", type=click.IntRange(0, 50), default=3, show_default=True,
              help="Refinement passes over the whole frontier.")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=5e-3, show_default=True,
              help="Stop refining when a pass improves no point by more than this fraction.")
@click.option("--quiet", is_flag=True, help="Only the result lines.")
def plan(stage_profile, kind, stages, microbatches, blocking_power_w, frontier_out, selection,
         plan_out, time_scale, energy_scale, points, passes, tolerance, quiet):
    """Search the pipeline time-energy frontier and select a plan.

    Last line: time_s=<float> energy_j=<float> of the selected plan, re-scored exactly."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..errors import ConfigError
    from ..pipeline import KINDS, load_stage_profile
    from ..search.pipeline_plan import plan_pipeline
    from ..search.select import parse_selection

    kind = kind.lower()
    if kind not in KINDS:
        raise ConfigError(f"unknown pipeline kind '{kind}'", f"use --pipeline {' or '.join(KINDS)}")
    parse_selection(selection)
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
            err.print(f"refine pass {rep.index}: {rep.new_times} new times, quantum "
                      f"{rep.quantum_s:.4g} s, best gain {rep.gain:.3%}")

        res = plan_pipeline(profile, kind, stages, microbatches, blocking_power_w, selection,
                            points=points, passes=passes, tol=tolerance, progress=progress,
                            on_pass=on_pass)
    elapsed = time.perf_counter() - started
    if frontier_out:
        res.frontier.save(frontier_out)
    if plan_out:
        res.plan.save(plan_out)
    base, got = res.baseline, res.result
    if not quiet:
        click.echo(f"{kind} pipeline, {stages} stages x {microbatches} microbatches, blocking "
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
