"""Placeholder for subcommands a later issue fills in; says which one."""

from __future__ import annotations

import click


def stub(name: str, issue: int, what: str) -> click.Command:
    @click.command(name=name, help=f"{what} (not built yet: issue #{issue}).",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args):
        raise click.ClickException(f"`gearshift {name}` is not built yet (issue #{issue}: {what})")

    return _cmd
