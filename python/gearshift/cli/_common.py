"""Options and helpers shared by subcommands: the device ones (profile, run) and the pipeline
ones (plan, sim pipeline)."""

from __future__ import annotations

import click


class AliasedOption(click.Option):
    """An option whose old names still parse but are left out of ``--help``.

    One name per meaning across commands: ``-o/--out`` an output file, ``--preset`` the
    simulated GPU, ``--gpu-index`` a GPU index, ``--data`` the shared data folder, ``--trace``
    a kernel trace file. A renamed option keeps its old name, hidden, for one release.
    """

    def __init__(self, *args, old: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old_names = tuple(old)

    def get_help_record(self, ctx):
        opts, secondary = self.opts, self.secondary_opts
        self.opts = [o for o in opts if o not in self.old_names]
        self.secondary_opts = [o for o in secondary if o not in self.old_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.secondary_opts = opts, secondary


def option(*decls: str, old: tuple[str, ...] = (), **kwargs):
    """``click.option`` with the ``old`` names accepted as hidden aliases; name the dest
    explicitly (a plain word among ``decls``) so the old names never pick it."""
    return click.option(*decls, *old, cls=AliasedOption, old=old, **kwargs)


def out_option(dest: str = "out", default=None, help: str = "Write the result here."):
    """``-o/--out FILE``: every command's output file (``--output`` is the old name)."""
    return option("-o", "--out", dest, old=("--output",), default=default,
                  show_default=default is not None, type=click.Path(dir_okay=False), help=help)


device_option = click.option(
    "--device", default="sim", show_default=True,
    help="Device: sim (the simulated GPU) | nvml | dry-run | daemon:/path.sock | auto "
         "(any kind in gearshift.devices' registry).")
preset_option = click.option(
    "--preset", "sim_preset", default=None,
    help="Simulated GPU: h100-sxm, a100-sxm, a40 (default GEARSHIFT_SIM_PRESET or h100-sxm).")


def open_device(spec: str, sim_preset: str | None, *, simulated_only: bool = False,
                refusal: str = "", fix: str = ""):
    """The device ``--device`` names, opened by the registry; with ``simulated_only``, refuse
    (``refusal`` formatted with the device's ``name``, and ``fix``) a device that is not
    simulated, e.g. a real GPU where only the simulator can replay or profile from the CLI."""
    from .. import devices  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415

    dev = devices.open_device(spec, preset=sim_preset)
    if simulated_only and not dev.capabilities.simulated:
        raise ConfigError(refusal.format(name=dev.name), fix)
    return dev


# pipeline subcommands (plan, sim pipeline) read the same stage profile the same way
pipeline_kind_option = click.option(
    "--pipeline", "kind", default="1f1b", show_default=True,
    help="The schedule (torch.distributed.pipelining's): 1f1b, gpipe, interleaved-1f1b, "
         "looped-bfs, zb-interleaved, zbv, dualpipev.")
virtual_stages_option = click.option(
    "--virtual-stages", "virtual_stages", type=int, default=None,
    help="Model stages per rank (interleaved-1f1b, looped-bfs, zb-interleaved: default 2; zbv, "
         "dualpipev: 2; 1f1b, gpipe: 1).")
# scales beyond these are unit mistakes, and the planner's time grid would not end
time_scale_option = click.option("--time-scale", type=click.FloatRange(0, 1000, min_open=True),
                                 default=1.0, show_default=True,
                                 help="Multiply every profile time (Perseus's emulation uses 10).")
energy_scale_option = click.option(
    "--energy-scale", type=click.FloatRange(0, 1e6, min_open=True), default=1.0,
    show_default=True,
    help="Multiply every profile energy (Perseus's emulation uses 80).")


def pipeline_kind(kind: str) -> str:
    """``--pipeline``'s value, checked and lower-cased."""
    from ..errors import ConfigError  # noqa: PLC0415
    from ..pipeline import KINDS  # noqa: PLC0415

    kind = kind.lower()
    if kind not in KINDS:
        raise ConfigError(f"unknown pipeline kind '{kind}'",
                          f"use --pipeline {', '.join(KINDS[:-1])} or {KINDS[-1]}")
    return kind
