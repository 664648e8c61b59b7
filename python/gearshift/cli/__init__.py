"""The ``gearshift`` command: one thin module per subcommand over the library's functions.

Subcommands are imported only when invoked, so ``gearshift info`` never pays for torch.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import GearshiftError
from ._types import harden

# name -> (module, attribute, one-line help). A later issue fills each stub module.
SUBCOMMANDS = {
    "info": ("info", "info", "What this machine offers: native libraries, GPUs, default device."),
    "demo": ("demo", "demo", "The whole flow on a simulated H100: plan a GPT step, run, report."),
    "trace": ("trace", "trace", "Trace one training step into a kernel trace."),
    "partition": ("partition", "partition", "Partition a kernel trace."),
    "profile": ("profile", "profile", "Profile every partition under every clock/overlap option."),
    "plan": ("plan", "plan", "Search the time-energy frontier and select a plan."),
    "run": ("run", "run", "Run training iterations with a schedule enforced."),
    "report": ("report", "report", "Write the frontier plot and a table of savings."),
    "bench": ("bench", "bench", "Micro-benchmarks (clock-switch latency, overheads)."),
    "sim": ("sim", "sim", "The simulated GPU: pipeline execution and validation."),
    "daemon": ("daemon", "daemon", "Privileged daemon that owns the GPUs' clocks."),
    "clock": ("clock", "clock", "Talk to the clock daemon (status, hold)."),
    "measure": ("measure", "measure", "Wall time and energy of a whole command: measure -- CMD."),
    "tune": ("tune", "tune", "Job-level tuning (power limit, batch size) and online adaptation."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return harden(getattr(importlib.import_module(f"{__name__}.{module}"), attr))

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, _, help_) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gearshift")
def cli():
    """gearshift: per-partition GPU clock and overlap scheduling for training."""


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="gearshift", standalone_mode=False)
    except GearshiftError as exc:
        click.secho(f"error: {exc.problem}", fg="red", err=True)
        if exc.fix:
            click.echo(f"  fix: {exc.fix}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        from .._deps import missing  # noqa: PLC0415

        err = missing(exc, f"`gearshift {' '.join((argv or sys.argv[1:])[:1])}`")
        if err is None:
            raise
        click.secho(f"error: {err.problem}", fg="red", err=True)
        click.echo(f"  fix: {err.fix}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
