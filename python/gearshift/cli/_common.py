"""Options and helpers shared by the stage subcommands (profile, run, report)."""

from __future__ import annotations

import click

device_option = click.option(
    "--device", default="sim", show_default=True,
    help="sim (the simulated GPU) | nvml | dry-run | auto")
preset_option = click.option(
    "--preset", "sim_preset", default=None,
    help="Simulated GPU: h100-sxm, a100-sxm, a40 (default GEARSHIFT_SIM_PRESET or h100-sxm).")


def open_device(kind: str, sim_preset: str | None):
    from ..integrations.device import resolve_device  # noqa: PLC0415

    return resolve_device(kind, sim_preset)
