"""`gearshift profile`: time and energy of every partition under every (clock, overlap) option."""

from __future__ import annotations

import click

from ._common import device_option, open_device, out_option, preset_option


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False))
@click.argument("partitioning_path", metavar="PARTITIONING", type=click.Path(dir_okay=False))
@out_option("output", "profile.json", help="Profile file to write.")
@device_option
@preset_option
@click.option("--freqs", default=None, help="Comma-separated SM clocks in MHz (default: the "
              "supported clocks from half the top clock up).")
@click.option("--min-freq", "min_freq_mhz", type=int, default=None, help="Lowest clock (MHz).")
@click.option("--freq-step", "step_mhz", type=int, default=None,
              help="Keep clocks at least this many MHz apart.")
@click.option("--overlaps", default=None,
              help="Comma-separated overlap choices for partitions with communication "
              "(default serial,window0-99,window0-99/sms=8,window0-99/sms=24,window2-99,"
              "window0-2: window<L>-<C>[/sms=N][/block=B], see docs/simulator.md).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def profile(trace_path, partitioning_path, output, device, sim_preset, freqs, min_freq_mhz,
            step_mhz, overlaps, quiet):
    """Profile PARTITIONING of TRACE on a device (the simulated GPU by default)."""
    from ..errors import ConfigError
    from ..model import KernelTrace, Partitioning
    from ..profile import profile_partitions

    trace = KernelTrace.load(trace_path)
    parts = Partitioning.load(partitioning_path)
    dev = open_device(device, sim_preset, simulated_only=True,
                      refusal="`gearshift profile` cannot run your training step on {name}",
                      fix="profile a real GPU from your training script: gearshift.compile("
                      "model, device='nvml') profiles it on the first step; "
                      "or profile --device sim")
    try:
        freq_list = [int(f) for f in freqs.split(",")] if freqs else None
    except ValueError as exc:
        raise ConfigError(f"--freqs '{freqs}' is not a list of whole numbers",
                          "write e.g. --freqs 1980,1800,1500") from exc
    prof = profile_partitions(trace, parts, dev, freqs_mhz=freq_list, min_freq_mhz=min_freq_mhz,
                              step_mhz=step_mhz,
                              overlaps=overlaps.split(",") if overlaps else None,
                              progress=not quiet)
    prof.save(output)
    n_opts = len(prof.entries)
    click.echo(f"profiled {prof.num_partitions} partitions, {n_opts} options "
               f"({prof.source} on {prof.device.name}) -> {output}")
