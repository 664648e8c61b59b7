"""`gearshift info`: the first command anyone runs."""

from __future__ import annotations

import json
import platform

import click

from .. import __version__, _native


def collect() -> dict:
    out: dict = {"version": __version__, "python": platform.python_version()}
    if _native.available():
        out["build"] = _native.build_info()
        out["libraries"] = {n: _native.library_status(n) for n in ("cuda", "nvml", "cupti")}
    else:
        out["build"] = {"error": _native.why_unavailable()}
        out["libraries"] = {}
    from ..devices import nvml_query  # noqa: PLC0415

    rep = nvml_query.query()
    out["nvml"] = {"available": rep.available, "reason": rep.reason,
                   "driver_version": rep.driver_version,
                   "gpus": [g.__dict__ for g in rep.gpus]}
    from ..devices import choose_auto, describe  # noqa: PLC0415

    chosen = choose_auto(rep)   # the registry's one `auto` choice (GEARSHIFT_DEVICE first)
    out["default_device"] = {"device": chosen.device, "kind": chosen.kind, "why": chosen.why}
    # the clock backend is the default device's kind (daemon: through the socket)
    out["clock_backend"] = {"backend": chosen.kind, "device": chosen.device, "why": chosen.why}
    out["device_kinds"] = describe()
    return out


def _clocks(mhz: list[int]) -> str:
    if not mhz:
        return "unknown"
    steps = {a - b for a, b in zip(mhz, mhz[1:])}
    step = f" in {steps.pop()} MHz steps" if len(steps) == 1 else ""
    return f"{min(mhz)}-{max(mhz)} MHz ({len(mhz)} clocks{step})"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info(as_json: bool) -> None:
    """Version, build, native libraries, GPUs with their SM clocks, and the default device."""
    data = collect()
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    b = data["build"]
    click.echo(f"gearshift {data['version']} (python {data['python']})")
    if "error" in b:
        click.echo(f"native extension: NOT AVAILABLE ({b['error']})")
    else:
        click.echo(f"native extension: built with {b['compiler']}, C++ {b['cxx_standard']}, "
                   f"links CUDA at build time: {'yes' if b['links_cuda'] else 'no'}")
    for name, s in data["libraries"].items():
        state = f"found ({s['path']})" if s["loaded"] else f"not found ({s['error']})"
        click.echo(f"  lib{name}: {state}")
    nv = data["nvml"]
    if not nv["available"]:
        click.echo(f"GPUs: none visible ({nv['reason']})")
    else:
        click.echo(f"GPUs (driver {nv['driver_version']}):")
        for g in nv["gpus"]:
            lock = "may lock clocks" if g["may_lock_clocks"] else f"may NOT lock clocks: {g['why_not']}"
            click.echo(f"  [{g['index']}] {g['name']}: SM clocks {_clocks(g['supported_sm_mhz'])}; {lock}")
    d = data["default_device"]
    click.echo(f"default device: {d['device']} ({d['why']})")
    click.echo(f"clock backend: {d['kind']}")
    click.echo(f"device kinds: {data['device_kinds']}")
