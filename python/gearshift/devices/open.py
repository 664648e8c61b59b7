"""The one device registry: a device string -> a Device, and the one ``auto`` choice.

A device string is a kind name, optionally with an argument after a colon:
``sim``, ``nvml``, ``dry-run``, ``daemon:/run/gearshift/gearshift.sock``, or ``auto``.
``gearshift.compile``, every CLI command, ``gearshift info``, the daemon and the runtime all
open devices here, so a kind registered here works everywhere at once.

Adding a kind is one call::

    from gearshift.devices.open import register
    register("fake-gpu", "gearshift.devices.fake:open_fake_gpu",
             help="the simulated GPU behind fake NVML/CUPTI")

The opener (a callable, or "module:function" imported on first use so ``import gearshift``
stays lean) is called as ``opener(arg, preset=..., gpu_index=..., **options)`` and returns a
Device (see ``devices/base.py``); ``arg`` is what followed the colon ("" if nothing did).
"""

from __future__ import annotations

import importlib
import os
import stat
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError

AUTO = "auto"


@dataclass(frozen=True)
class DeviceKind:
    name: str
    opener: Callable | str
    help: str
    argument: str = ""        # what follows "name:" (e.g. "/path/to.sock"); "" = takes none

    def load(self) -> Callable:
        if callable(self.opener):
            return self.opener
        module, _, attr = self.opener.partition(":")
        return getattr(importlib.import_module(module), attr)


_KINDS: dict[str, DeviceKind] = {}


def register(name: str, opener: Callable | str, *, help: str, argument: str = "",
             replace: bool = False) -> DeviceKind:
    """Make ``name`` a device kind everywhere (compile, CLI ``--device``, info, runtime).

    ``argument``: a short description of what follows ``name:`` when the kind takes one
    (``daemon`` takes the socket path), shown in errors; empty when it takes none.
    """
    if not name or name == AUTO or ":" in name or name != name.strip().lower():
        raise ConfigError(f"'{name}' cannot be a device kind name",
                          "use a lower-case name without ':' other than 'auto'")
    if name in _KINDS and not replace:
        raise ConfigError(f"device kind '{name}' is already registered",
                          "pick another name, or pass replace=True to override it")
    kind = DeviceKind(name, opener, help, argument)
    _KINDS[name] = kind
    return kind


def kinds() -> tuple[str, ...]:
    """Registered kind names, in registration order (``auto`` is not one)."""
    return tuple(_KINDS)


def describe() -> str:
    """``auto | sim | nvml | dry-run | daemon:/path/to.sock`` for help texts and errors."""
    return " | ".join([AUTO] + [k.name + (f":{k.argument}" if k.argument else "")
                                for k in _KINDS.values()])


def parse(spec: str) -> tuple[str, str]:
    """(kind, argument) of a device string, checked; ``auto`` parses as ("auto", "")."""
    if not isinstance(spec, str):
        raise ConfigError(f"device {spec!r} is not a string", f"use one of {describe()}")
    text = spec.strip()
    name, colon, arg = text.partition(":")
    name = name.lower()
    if name == AUTO and not colon:
        return AUTO, ""
    kind = _KINDS.get(name)
    if kind is None:
        raise ConfigError(f"unknown device '{spec}'", f"use one of {describe()}")
    if kind.argument and not arg:
        raise ConfigError(f"device '{spec}' needs {kind.argument} after '{name}:'",
                          f"write {name}:{kind.argument}")
    if arg and not kind.argument:
        raise ConfigError(f"device '{spec}': {name} takes no argument after ':'",
                          f"write {name}")
    return name, arg


def validate(spec: str) -> str:
    """``spec`` itself when it names a registered kind (or auto); a one-line ConfigError if not."""
    parse(spec)
    return spec.strip()


# ------------------------------------------------------------------------------ auto
@dataclass(frozen=True)
class AutoChoice:
    device: str    # a device string: "nvml", "dry-run", "sim", "daemon:/path.sock"
    why: str

    @property
    def kind(self) -> str:
        return self.device.partition(":")[0]


def socket_exists(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def choose_auto(report=None, *, env=None, is_root: bool | None = None) -> AutoChoice:
    """The device ``auto`` means on this machine, and why.

    GEARSHIFT_DEVICE first; else ``nvml`` when a GPU is present and this process may lock its
    clocks; else the daemon when this process is not root and the daemon's socket exists;
    else ``dry-run`` on a GPU (switches logged, never applied); else the simulated GPU.
    ``report`` (an ``nvml_query.NvmlReport``) is queried when not given.
    """
    from ..config import environment  # noqa: PLC0415

    env = env or environment()
    if env.device.strip().lower() != AUTO:
        return AutoChoice(env.device, f"set by GEARSHIFT_DEVICE={env.device}")
    fake = os.environ.get("GEARSHIFT_FAKE_GPU")
    if fake:
        return AutoChoice("fake-gpu", f"GEARSHIFT_FAKE_GPU={fake}: the simulated {fake} played "
                          "behind fake CUPTI/NVML (the real-GPU code path on this CPU)")
    if report is None:
        from . import nvml_query  # noqa: PLC0415

        report = nvml_query.query()
    gpus = report.gpus if report.available else []
    if gpus and all(g.may_lock_clocks for g in gpus):
        return AutoChoice("nvml", "a GPU is present and this process may lock its clocks")
    root = os.geteuid() == 0 if is_root is None else is_root
    if not root and socket_exists(env.daemon_socket):
        return AutoChoice(f"daemon:{env.daemon_socket}",
                          "this process is not root and the gearshift daemon's socket exists "
                          f"at {env.daemon_socket}")
    if gpus:
        why_not = next((g.why_not for g in gpus if g.why_not), "")
        return AutoChoice("dry-run", "a GPU is present but this process may not lock clocks"
                          + (f" ({why_not})" if why_not else "")
                          + f"; no daemon socket at {env.daemon_socket}")
    return AutoChoice("sim", f"no GPU visible ({report.reason or 'none listed'}): the "
                      f"simulated {env.sim_preset} is used")


def resolve(spec: str = AUTO) -> AutoChoice:
    """``spec`` with ``auto`` resolved: the device string that will be opened, and why."""
    name, _ = parse(spec)
    if name == AUTO:
        return choose_auto()
    return AutoChoice(spec.strip(), f"device is set to {spec.strip()}")


# ------------------------------------------------------------------------------ open
def open_device(spec: str = AUTO, *, preset: str | None = None, gpu_index: int = 0,
                **options):
    """The Device ``spec`` names (``auto`` resolved by ``choose_auto``).

    ``preset``: the simulated GPU (h100-sxm, a100-sxm, a40; default GEARSHIFT_SIM_PRESET);
    ``gpu_index``: which GPU a real device drives. Other options go to the kind's opener.
    """
    if isinstance(gpu_index, bool) or not isinstance(gpu_index, int) or gpu_index < 0:
        raise ConfigError(f"GPU index {gpu_index!r} must be a whole number >= 0",
                          "pass e.g. gpu_index=0 (--gpu-index 0)")
    spec = resolve(spec).device
    name, arg = parse(spec)
    return _KINDS[name].load()(arg, preset=preset, gpu_index=gpu_index, **options)


# ------------------------------------------------------------------------------ built-ins
def _open_sim(arg: str, *, preset=None, gpu_index: int = 0, switch_latency_s=None, **_):
    from ..config import environment  # noqa: PLC0415
    from .sim import SimDevice  # noqa: PLC0415

    return SimDevice(preset or environment().sim_preset, switch_latency_s=switch_latency_s)


def _open_gpu(kind: str):
    def opener(arg: str, *, preset=None, gpu_index: int = 0, **_):
        from .gpu import GpuDevice  # noqa: PLC0415

        return GpuDevice.open(kind, gpu_index)

    return opener


def _open_daemon(arg: str, *, preset=None, gpu_index: int = 0, measure=None, **_):
    """Clocks through the daemon. Time and energy: ``measure`` (a Device), else the fake GPU
    when GEARSHIFT_FAKE_GPU names one (the whole process plays it: the in-loop path with every
    lock through the daemon), else the simulated ``preset`` when one is named (the daemon's
    switches priced by the simulator), else the GPU's NVML counter read-only."""
    from .daemon import DaemonDevice  # noqa: PLC0415

    if measure is None and os.environ.get("GEARSHIFT_FAKE_GPU"):
        from .fake_gpu import FakeGpuDevice  # noqa: PLC0415

        measure = FakeGpuDevice(os.environ["GEARSHIFT_FAKE_GPU"])
    if measure is None and preset:
        measure = _open_sim("", preset=preset)
    return DaemonDevice(arg, gpu_index, measure=measure)


register("sim", _open_sim, help="the calibrated simulated GPU (no GPU needed)")
register("nvml", _open_gpu("nvml"), help="a real NVIDIA GPU; locking clocks needs root")
register("dry-run", _open_gpu("dry-run"),
         help="a real GPU whose clocks are never changed: switches are logged")
register("daemon", _open_daemon, argument="/path/to.sock",
         help="clocks through the root-owned `gearshift daemon` on that socket")
register("fake-gpu", "gearshift.devices.fake_gpu:open_fake_gpu",
         help="the simulated GPU played behind fake CUPTI/NVML/stream signals: the real-GPU "
              "code path on a CPU (GEARSHIFT_FAKE_GPU=<preset> selects it for auto)")
