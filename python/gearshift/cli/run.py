"""`gearshift run`: iterations with a schedule enforced, next to the all-max baseline."""

from __future__ import annotations

import click

from ._common import device_option, open_device, out_option, preset_option


@click.command()
@click.argument("schedule_path", metavar="SCHEDULE", type=click.Path(dir_okay=False))
@click.option("--trace", "trace_path", required=True, type=click.Path(dir_okay=False),
              help="The kernel trace the schedule was planned for.")
@click.option("--frontier", "frontier_path", default=None, type=click.Path(dir_okay=False),
              help="Frontier file: its all-max baseline is replayed for comparison.")
@click.option("-n", "--iterations", default=5, show_default=True, type=click.IntRange(1, 100000),
              help="Iterations to run with the schedule (and as many for the baseline).")
@click.option("--no-baseline", is_flag=True, help="Run only the schedule.")
@out_option("output", help="Write the run summary here (input of `gearshift report --run`).")
@click.option("--timeline-out", default=None, type=click.Path(dir_okay=False),
              help="Write the last iteration's kernels as Chrome trace events (Perfetto): one "
                   "track per stream per GPU, args id/deps/kind/partition/freq_mhz.")
@device_option
@preset_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(schedule_path, trace_path, frontier_path, iterations, no_baseline, output, timeline_out,
        device,
        sim_preset, quiet):
    """Replay TRACE's iterations with SCHEDULE enforced and print time and energy.

    On the simulated GPU every figure is simulated. On a real GPU the schedule is enforced
    inside your training script (gearshift.compile(model, schedule_path=...)).
    """
    from ..integrations.run import run_schedule
    from ..model import Frontier, KernelTrace, Schedule
    from ..report import format_table, savings_rows

    schedule = Schedule.load(schedule_path)
    trace = KernelTrace.load(trace_path)
    dev = open_device(device, sim_preset, simulated_only=True,
                      refusal="`gearshift run` replays traces on the simulated GPU, not on {name}",
                      fix="on a real GPU enforce the schedule in your training script: "
                      "gearshift.compile(model, device='nvml', schedule_path=...)")
    schedule.check_compatible(trace.signature(), dev.facts.name)
    schedule.validate(schedule_path, dev.facts.supported_freqs_mhz)
    baseline = None
    if frontier_path:
        fr = Frontier.load(frontier_path)
        baseline = fr.baseline.choices if fr.baseline else None
    summary = run_schedule(dev, trace, schedule, iterations=iterations, baseline=baseline,
                           with_baseline=not no_baseline, progress=not quiet,
                           timeline_out=timeline_out)
    g = summary.gearshift
    click.echo(f"{iterations} iterations on {summary.device} "
               f"({summary.source.upper()} {summary.energy_scope} energy):")
    if summary.baseline:
        click.echo(format_table(savings_rows(summary.baseline.time_s, summary.baseline.energy_j,
                                             g.time_s, g.energy_j)))
    else:
        click.echo(f"gearshift: {g.time_s * 1e3:.2f} ms, {g.energy_j:.2f} J per iteration")
    if output:
        summary.save(output)
        click.echo(f"run summary -> {output}")
    if timeline_out:
        click.echo(f"timeline of the last iteration (simulated) -> {timeline_out}")
