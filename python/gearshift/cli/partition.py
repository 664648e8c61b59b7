"""`gearshift partition`: a kernel trace file -> a partitioning file."""

from __future__ import annotations

import click

from ..model import KernelTrace
from ._common import option


@click.command()
@click.argument("trace_file", type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the partitioning here (JSON).")
@click.option("--strategy", default="auto", show_default=True,
              type=click.Choice(["auto", "module+comm", "module", "comm", "kernel"]),
              help="Where to cut: at module and communication boundaries, either alone, or at "
                   "every kernel; auto picks from the trace.")
@click.option("--min-partition-ms", type=float, default=None,
              help="Merge partitions shorter than this [default: 2 x the switch latency].")
@click.option("--switch-latency-ms", type=float, default=None,
              help="The device's clock-switch latency [default: 5 ms].")
@option("--preset", "gpu", old=("--gpu",), default=None,
              help="Simulated GPU preset (h100-sxm, a100-sxm, a40) whose switch latency and "
                   "roofline size the partitions [default: H100-like].")
@click.option("--show", type=int, default=12, show_default=True,
              help="Partitions to list (the longest); 0 lists all.")
def partition(trace_file: str, out: str | None, strategy: str, min_partition_ms,
              switch_latency_ms, gpu: str | None, show: int) -> None:
    """Group the kernels of a trace into partitions worth one clock setting each."""
    from ..partition import Roofline  # noqa: PLC0415
    from ..partition import partition as run  # noqa: PLC0415

    trace = KernelTrace.load(trace_file)
    estimator = None
    latency_s = None if switch_latency_ms is None else switch_latency_ms / 1e3
    if gpu is not None:
        from ..devices.sim.presets import get_preset  # noqa: PLC0415

        preset = get_preset(gpu)
        estimator = Roofline.from_preset(preset)
        latency_s = preset.switch_latency_s if latency_s is None else latency_s
    parts = run(trace, strategy=strategy, time_estimator=estimator,
                min_partition_s=None if min_partition_ms is None else min_partition_ms / 1e3,
                switch_latency_s=latency_s)
    total = sum(p.expected_time_s or 0.0 for p in parts.partitions) or 1.0
    comm = sum(p.has_comm for p in parts.partitions)
    click.echo(f"{trace.model or trace_file}: {len(trace)} kernels -> {len(parts)} partitions "
               f"({parts.strategy}, min {parts.min_partition_s * 1e3:.2f} ms, {comm} with "
               f"communication); expected iteration {total * 1e3:.1f} ms "
               f"(roofline estimate, {gpu or 'H100-like'})")
    listed = sorted(parts.partitions, key=lambda p: -(p.expected_time_s or 0.0))
    listed = sorted(listed[:show] if show else listed, key=lambda p: p.index)
    for p in listed:
        share = (p.expected_time_s or 0.0) / total
        click.echo(f"  p{p.index:<4d} {p.num_kernels:5d} kernels {share:6.1%}  "
                   f"{(p.expected_time_s or 0) * 1e3:8.2f} ms  {p.label}")
    if show and len(parts) > show:
        click.echo(f"  ... {len(parts) - show} more (--show 0 lists all)")
    click.echo(f"signature {parts.signature()}")
    if out:
        parts.save(out)
        click.echo(f"wrote {out}")
