"""`gearshift measure -- CMD ...`: wall time and energy of a whole command."""

from __future__ import annotations

import click


@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
              help="Append the window to this .csv or .jsonl file.")
@click.option("--node-idle-power-w", type=float, default=None,
              help="Power of the node's other parts; adds an estimated whole-node figure.")
@click.option("--name", default=None, help="Window name (default: the command).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def measure(log_path, node_idle_power_w, name, command):
    """Run COMMAND and report its wall time and each energy figure (GPUs by NVML, CPU and DRAM
    by RAPL, where readable) with its scope and source; exits with COMMAND's exit code.

    Example: gearshift measure --log energy.csv -- python train.py --epochs 1
    """
    import shlex  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from ..errors import ConfigError  # noqa: PLC0415
    from ..monitor import Monitor  # noqa: PLC0415
    from ..monitor.windows import measure as window  # noqa: PLC0415

    # the command's own GPUs (NVML) when there are any; never a simulated GPU, which only
    # prices steps gearshift runs inside this process
    from ..errors import DeviceError  # noqa: PLC0415
    from ..monitor.gpu import NoGpuCounters  # noqa: PLC0415

    try:
        mon = Monitor(devices="nvml", node_idle_power_w=node_idle_power_w)
    except DeviceError as exc:   # no NVML: the GPU part is reported as not measured, and why
        mon = Monitor(devices=NoGpuCounters(exc.problem), node_idle_power_w=node_idle_power_w)
    label = name or shlex.join(command)
    try:
        with window(label, mon, log=log_path) as m:
            rc = subprocess.call(list(command))
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot run {command[0]!r}: {exc.strerror}",
                          "give the command after `--`, e.g. gearshift measure -- python "
                          "train.py") from exc
    click.echo(str(m.result), err=True)
    raise SystemExit(rc)
