"""`gearshift report`: the frontier plot (PNG) and a short table of savings."""

from __future__ import annotations

import click

from ._common import out_option


@click.command()
@click.argument("frontier_path", metavar="FRONTIER", type=click.Path(dir_okay=False))
@click.option("--schedule", "schedule_path", default=None, type=click.Path(dir_okay=False),
              help="The selected schedule (marks the chosen point, adds the planned table).")
@click.option("--run", "run_path", default=None, type=click.Path(dir_okay=False),
              help="A run summary from `gearshift run --out` (marks the point as run).")
@out_option("output", "frontier.png", help="PNG to write.")
@click.option("--title", default="", help="Plot title.")
def report(frontier_path, schedule_path, run_path, output, title):
    """Plot FRONTIER with the all-max baseline and the chosen point; print the savings."""
    from ..errors import ConfigError
    from ..model import Frontier, Schedule
    from ..report import RunSummary
    from ..report import report as make_report

    if not output.lower().endswith(".png"):
        raise ConfigError(f"output '{output}' is not a .png file", "write e.g. -o frontier.png")
    fr = Frontier.load(frontier_path)
    sched = Schedule.load(schedule_path) if schedule_path else None
    run = RunSummary.load(run_path) if run_path else None
    png, table = make_report(fr, output, sched, run, title)
    if table:
        click.echo(table)
    click.echo(f"plot: {png}")
