"""`gearshift demo`: trace, partition, profile, search, run and report on a simulated GPU, next
to the baselines (a) Megatron default, (b) nanobatching, (c) nanobatching + per-instruction
clocks."""

from __future__ import annotations

import time

import click

from ._common import option


@click.command()
@click.option("--model", default=None,
              help="Zoo preset to trace (default llama-3.2-3b-tp8, as Kareus runs it).")
@option("--preset", "gpu", old=("--gpu",), default="a100-sxm", show_default=True,
        help="Simulated GPU: h100-sxm, a100-sxm or a40.")
@click.option("--nanobatches", default=2, show_default=True, type=click.IntRange(1, 16),
              help="Nanobatches per microbatch for (b)-(d).")
@click.option("--layers", default=None, type=click.IntRange(1, 1000),
              help="Trace only this many layers (quicker; the default is the whole model).")
@click.option("--objective", default="iso-time", show_default=True,
              help="Objective: iso-time | fastest | iso-energy | max-slowdown=X | deadline=T | "
                   "cost=ETA (gearshift.objective).")
@click.option("--iterations", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Iterations run with the schedule and with the baseline.")
@option("--out-dir", "out_dir", old=("--out",), default="gearshift-demo", show_default=True,
              type=click.Path(file_okay=False), help="Where plan, run and plot are written.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def demo(model, gpu, nanobatches, layers, objective, iterations, out_dir, quiet):
    """The whole flow on a simulated GPU: plan a training step's clocks and overlap, run it,
    and compare with what users run without gearshift."""
    from ..integrations.demo import DEMO_MODEL, run_demo
    from ..objective import Objective
    from ..search.baselines import savings_lines, table

    objective = str(Objective.parse(objective))
    t0 = time.perf_counter()
    res = run_demo(model or DEMO_MODEL, gpu, iterations, out_dir, objective, not quiet,
                   nanobatches=nanobatches, layers=layers)
    plan, run = res.plan, res.run
    s = plan.schedule
    click.echo("")
    click.secho(f"gearshift demo: {plan.trace.model}, {len(plan.trace)} kernels in "
                f"{len(plan.partitioning)} partitions, on the simulated "
                f"{plan.profile.device.name}", bold=True)
    clocks = sorted(set(s.freqs_mhz()))
    click.echo(f"schedule ({s.objective}): SM clocks {min(clocks)}-{max(clocks)} MHz over "
               f"{len(s.entries)} partitions, {run.meta['clock_switches_per_iteration']:.0f} "
               f"clock switches per iteration; frontier of {len(plan.frontier)} points")
    click.echo("")
    click.echo(table(res.baselines))
    for line in savings_lines(res.baselines):
        click.echo(line)
    click.echo("")
    click.echo(res.table)
    click.echo("")
    click.secho(f"vs (a), as run: energy saved: {run.energy_saving() * 100:.2f} % at "
                f"{(run.slowdown() - 1) * 100:+.2f} "
                f"% time (SIMULATED: {run.source} {run.energy_scope} energy, not a measurement)",
                fg="green" if run.energy_saving() > 0 else None)
    planned = s.predicted.get("slowdown", 1.0)
    if run.slowdown() > planned + 0.001:
        click.echo(f"(as run is {(run.slowdown() / planned - 1) * 100:.1f} % slower than planned: "
                   f"the plan prices settled clocks, the run pays the switch latency at "
                   f"{run.meta['clock_switches_per_iteration']:.0f} switches per iteration)")
    click.echo(f"plot: {res.plot}")
    click.echo(f"files: {res.out_dir}/ (trace, partitioning, profile, frontier, schedule, run)")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")
