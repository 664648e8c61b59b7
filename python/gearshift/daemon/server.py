"""Runs the C++ daemon loop (`gearshift daemon`) and, optionally, its metrics endpoint."""

from __future__ import annotations

import grp
import pwd
import signal
import sys

from .. import _native
from ..errors import ConfigError, DeviceError
from .client import translate

BACKENDS = ("dry-run", "sim", "nvml")
# Mirrors kMinLeaseS/kMaxLeaseS (csrc/daemon/server.h), which the native server enforces too:
# heartbeats (every lease/3) cannot keep a shorter lease, and a longer one would leave a hung
# trainer's clocks locked for hours.
MIN_LEASE_S, MAX_LEASE_S = 0.1, 3600.0


def check_lease_s(lease_s) -> float:
    """``--lease-s`` as a float within MIN_LEASE_S..MAX_LEASE_S, or a ConfigError."""
    ok = not isinstance(lease_s, bool) and isinstance(lease_s, (int, float))
    if not (ok and MIN_LEASE_S <= lease_s <= MAX_LEASE_S):  # NaN fails the comparison
        raise ConfigError(f"--lease-s {lease_s!r} is outside {MIN_LEASE_S:g}..{MAX_LEASE_S:g} "
                          "seconds", "pass e.g. --lease-s 10")
    return float(lease_s)


def resolve_uid(value: str | int) -> int:
    """A user name or numeric uid that exists on this machine."""
    text = str(value).strip()
    try:
        return pwd.getpwnam(text).pw_uid if not text.isdigit() else pwd.getpwuid(int(text)).pw_uid
    except KeyError:
        raise ConfigError(f"--allow-uid {text}: no such user on this machine",
                          "pass a user name or uid listed by `getent passwd`") from None


def resolve_gid(value: str | int) -> int:
    text = str(value).strip()
    try:
        return grp.getgrnam(text).gr_gid if not text.isdigit() else grp.getgrgid(int(text)).gr_gid
    except KeyError:
        raise ConfigError(f"--allow-gid {text}: no such group on this machine",
                          "pass a group name or gid listed by `getent group`") from None


def simulated_clocks_mhz() -> list[int]:
    """The simulated GPU's SM clocks, highest first (GEARSHIFT_SIM_PRESET, default H100 SXM:
    345-1980 MHz in 15 MHz steps): what the sim backend, and dry-run without a GPU, present."""
    from ..config import environment  # noqa: PLC0415
    from ..devices.sim.presets import ALIASES, PRESETS, get_preset  # noqa: PLC0415

    key = environment().sim_preset.lower()
    preset = PRESETS.get(ALIASES.get(key, key)) or get_preset(key)  # get_preset: the clear error
    return list(preset.freqs_mhz)


def _visible_gpus() -> tuple[int, list[int]]:
    """GPU count and GPU 0's SM clocks, read-only from NVML; (0, []) without a GPU."""
    from ..devices import nvml_query  # noqa: PLC0415

    rep = nvml_query.query()
    if rep.available and rep.gpus and rep.gpus[0].supported_sm_mhz:
        return len(rep.gpus), list(rep.gpus[0].supported_sm_mhz)
    return 0, []


def make_backend(kind: str):
    """The runtime's clock backend for the daemon, and the label clients are told (built by
    ``gearshift.runtime.backends``, the one place native backends are made)."""
    from ..runtime.backends import make_backend as native_backend  # noqa: PLC0415

    if kind == "dry-run":
        # On a GPU: its real clock list (never changed); without one: the simulated H100's.
        count, clocks = _visible_gpus()
        if not count:
            count, clocks = 1, simulated_clocks_mhz()
        return native_backend("dry-run", device_count=count, supported_mhz=clocks), "dry-run"
    if kind == "sim":
        return native_backend("sim", supported_mhz=simulated_clocks_mhz()), "sim"
    if kind == "nvml":
        from ..devices.nvml_query import _may_lock_clocks  # noqa: PLC0415

        may, why = _may_lock_clocks()
        if not may:
            raise DeviceError(f"--backend nvml: this daemon may not lock clocks ({why})",
                              "start `gearshift daemon` as root (e.g. with "
                              "docs/gearshift-daemon.service), or use --backend dry-run")
        return native_backend("nvml"), "nvml"
    raise ConfigError(f"unknown daemon backend '{kind}'", f"use one of {', '.join(BACKENDS)}")


class DaemonCollector:
    """Per-GPU series read from the running daemon at scrape time."""

    def __init__(self, server, backend: str):
        self._server = server
        self._backend = backend
        self._nvml = None
        if backend in ("nvml", "dry-run"):
            # Power and energy are only read, never set: fine on any real GPU.
            from ..devices import nvml_query  # noqa: PLC0415

            try:
                self._nvml = nvml_query.library()
            except DeviceError:  # no driver or no GPU: the clock series still work
                self._nvml = None

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

        gpus = self._server.snapshot()
        clock = GaugeMetricFamily("gearshift_sm_clock_mhz",
                                  "SM clock locked through the daemon, in MHz", labels=["gpu"])
        held = GaugeMetricFamily("gearshift_clock_held",
                                 "1 while a client holds the GPU's clock lease", labels=["gpu"])
        switches = CounterMetricFamily("gearshift_clock_switches",
                                       "SM clock switches applied by the daemon", labels=["gpu"])
        resets = CounterMetricFamily("gearshift_clock_resets",
                                     "Resets to default clocks by the daemon", labels=["gpu"])
        power = GaugeMetricFamily("gearshift_power_watts", "Board power in W", labels=["gpu"])
        energy = CounterMetricFamily("gearshift_energy_joules", "Energy in J",
                                     labels=["gpu", "scope", "source"])
        for g in gpus:
            i = str(g.index)
            if g.locked_mhz is not None:
                clock.add_metric([i], g.locked_mhz)
            elif self._nvml is not None:
                try:
                    h = self._nvml.nvmlDeviceGetHandleByIndex(g.index)
                    clock.add_metric([i], self._nvml.nvmlDeviceGetClockInfo(
                        h, self._nvml.NVML_CLOCK_SM))
                except Exception:
                    pass
            held.add_metric([i], 0 if g.locked_mhz is None else 1)
            switches.add_metric([i], g.switches)
            resets.add_metric([i], g.resets)
            if self._nvml is not None:
                try:
                    h = self._nvml.nvmlDeviceGetHandleByIndex(g.index)
                    power.add_metric([i], self._nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
                    energy.add_metric([i, "gpu", "measured"],
                                      self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
                except Exception:
                    pass
        yield from (clock, held, switches, resets, power, energy)


def run_daemon(socket_path: str, backend: str, allow_uids=(), allow_gids=(), lease_s: float = 10.0,
               metrics_port: int | None = None, metrics_addr: str = "127.0.0.1",
               log_path: str | None = None, announce=None) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit status (0 on a clean stop)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown daemon backend '{backend}'", "use dry-run, sim or nvml")
    check_lease_s(lease_s)
    if metrics_port is not None and not (isinstance(metrics_port, int)
                                         and 0 <= metrics_port <= 65535):
        raise ConfigError(f"--metrics-port {metrics_port!r} is out of range",
                          "use a port in 1-65535")
    uids = [resolve_uid(u) for u in allow_uids]
    gids = [resolve_gid(g) for g in allow_gids]
    try:
        log_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (notebook, test runner)
        log_fd = 2
    log_file = None
    if log_path:
        try:
            log_file = open(log_path, "a", buffering=1)  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot open the daemon log {log_path}: {exc.strerror}",
                              "choose a writable --log path") from None
        log_fd = log_file.fileno()
    C = _native.native()
    clocks, label = make_backend(backend)
    try:
        server = C.DaemonServer(str(socket_path), clocks, uids, gids, float(lease_s), log_fd,
                                backend_label=label)
        server.open()
    except C.DaemonError as exc:
        raise translate(exc) from None
    metrics = None
    try:
        if metrics_port is not None:
            from prometheus_client import CollectorRegistry  # noqa: PLC0415

            from ..metrics import serve_metrics  # noqa: PLC0415

            registry = CollectorRegistry()
            registry.register(DaemonCollector(server, backend))
            metrics = serve_metrics(metrics_port, addr=metrics_addr, registry=registry)
        if announce:
            announce(server, metrics)
        sig = server.serve()
    except C.DaemonError as exc:
        raise translate(exc) from None
    finally:
        if metrics is not None:
            metrics.close()
        if log_file is not None:
            log_file.close()
    if sig == signal.SIGINT:
        return 0
    return 0 if sig in (0, signal.SIGTERM) else 128 + sig


__all__ = ["BACKENDS", "MAX_LEASE_S", "MIN_LEASE_S", "DaemonCollector", "check_lease_s", "resolve_gid", "resolve_uid", "run_daemon"]
