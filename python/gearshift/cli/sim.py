"""``gearshift sim``: the simulated GPU's pipeline executor and its validation report."""

from __future__ import annotations

import click


@click.group(name="sim")
def sim():
    """The simulated GPU: pipeline execution and validation (every figure is simulated)."""


@sim.command(name="pipeline")
@click.option("--stage-profile", "stage_profile", required=True, type=click.Path(dir_okay=False),
              help="CSV stage,instruction,frequency,time,energy (one microbatch, one GPU).")
@click.option("--plan", "plan_path", required=True, type=click.Path(dir_okay=False),
              help="CSV stage,instruction,microbatch,freq_mhz (one row per computation).")
@click.option("--pipeline", "kind", default="1f1b", show_default=True, help="1f1b or gpipe.")
@click.option("--stages", type=int, required=True, help="Number of pipeline stages S.")
@click.option("--microbatches", type=int, required=True, help="Microbatches per iteration N.")
@click.option("--blocking-power-w", type=float, required=True,
              help="Power of one stage's GPU while it waits, charged for its idle seconds.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiply every profile time (Perseus's emulation uses 10).")
@click.option("--energy-scale", type=float, default=1.0, show_default=True,
              help="Multiply every profile energy (Perseus's emulation uses 80).")
@click.option("--p2p-s", type=float, default=0.0, show_default=True,
              help="Point-to-point transfer time added on every edge between stages.")
def pipeline(stage_profile, plan_path, kind, stages, microbatches, blocking_power_w, time_scale,
             energy_scale, p2p_s):
    """Iteration time and energy of a frequency plan; last line: time_s=<float> energy_j=<float>."""
    from ..errors import ConfigError
    from ..pipeline import KINDS, PipelinePlan, execute, load_stage_profile
    from ..pipeline.order import check_shape

    kind = kind.lower()
    if kind not in KINDS:
        raise ConfigError(f"unknown pipeline kind '{kind}'", f"use --pipeline {' or '.join(KINDS)}")
    check_shape(stages, microbatches)
    if not p2p_s >= 0:
        raise ConfigError(f"--p2p-s {p2p_s} is negative", "pass a transfer time >= 0")
    profile = load_stage_profile(stage_profile, time_scale, energy_scale)
    plan = PipelinePlan.load(plan_path, stages, microbatches)
    res = execute(profile, plan, kind, stages, microbatches, blocking_power_w, p2p_s)
    click.echo(f"simulated {kind} pipeline, {stages} stages x {microbatches} microbatches: "
               f"compute {res.compute_energy_j:.6g} J + blocking {res.blocking_energy_j:.6g} J")
    click.echo(res.line())
