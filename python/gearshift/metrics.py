"""Prometheus metrics for cluster dashboards (``prometheus-client``, exposition format).

A training process serves its own metrics with :func:`serve_metrics`; the clock daemon serves
per-GPU metrics with ``gearshift daemon --metrics-port P``. Both listen on loopback unless told
otherwise: a scrape port is not something to open to the network by accident.

Exported series (every energy series says what it covers and how it was obtained):

- ``gearshift_sm_clock_mhz{gpu}``: the SM clock last set (gauge)
- ``gearshift_power_watts{gpu}``: board power (gauge)
- ``gearshift_energy_joules_total{gpu,scope,source}``: energy counter; ``scope`` is one of
  gpu/cpu/dram/node, ``source`` one of measured/simulated/replayed
- ``gearshift_clock_switches_total{gpu}``: clock switches applied
- ``gearshift_iteration_time_seconds{gpu}`` and
  ``gearshift_iteration_energy_joules{gpu,scope,source}``: per-iteration histograms

The runtime and the energy monitor feed :func:`default_metrics`; anything else may too.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .errors import ConfigError

SCOPES = ("gpu", "cpu", "dram", "node")
SOURCES = ("measured", "simulated", "replayed")
LOOPBACK = "127.0.0.1"

# Iterations last from about a millisecond (tiny models) to minutes (large pipelines).
TIME_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                  30.0, 60.0, 300.0)
ENERGY_BUCKETS_J = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
                    1000.0, 2500.0, 10000.0, 100000.0)


def _check_label(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ConfigError(f"unknown energy {what} '{value}'",
                          f"use one of {', '.join(allowed)}")
    return value


def _check_amount(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite non-negative number, got {value}",
                          "pass the measured quantity in SI units")
    return value


class Metrics:
    """One set of gearshift series in its own registry (never the global default one)."""

    def __init__(self, registry=None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: PLC0415

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._sm_clock = Gauge("gearshift_sm_clock_mhz", "SM clock last set, in MHz", ["gpu"],
                               registry=r)
        self._power = Gauge("gearshift_power_watts", "Board power in W", ["gpu"], registry=r)
        self._energy = Counter("gearshift_energy_joules",
                               "Energy in J; scope: gpu/cpu/dram/node; source: how it was obtained",
                               ["gpu", "scope", "source"], registry=r)
        self._switches = Counter("gearshift_clock_switches", "SM clock switches applied", ["gpu"],
                                 registry=r)
        self._iter_time = Histogram("gearshift_iteration_time_seconds",
                                    "Training iteration time in s", ["gpu"],
                                    buckets=TIME_BUCKETS_S, registry=r)
        self._iter_energy = Histogram("gearshift_iteration_energy_joules",
                                      "Training iteration energy in J", ["gpu", "scope", "source"],
                                      buckets=ENERGY_BUCKETS_J, registry=r)

    def set_clock(self, gpu: int, freq_mhz: float) -> None:
        self._sm_clock.labels(gpu=str(gpu)).set(_check_amount(freq_mhz, "freq_mhz"))

    def set_power(self, gpu: int, power_w: float) -> None:
        self._power.labels(gpu=str(gpu)).set(_check_amount(power_w, "power_w"))

    def add_energy(self, energy_j: float, gpu: int = 0, scope: str = "gpu",
                   source: str = "measured") -> None:
        self._energy.labels(gpu=str(gpu), scope=_check_label(scope, SCOPES, "scope"),
                            source=_check_label(source, SOURCES, "source")).inc(
                                _check_amount(energy_j, "energy_j"))

    def count_switch(self, gpu: int = 0, n: int = 1) -> None:
        self._switches.labels(gpu=str(gpu)).inc(_check_amount(n, "n"))

    def observe_iteration(self, time_s: float, energy_j: float | None = None, gpu: int = 0,
                          scope: str = "gpu", source: str = "measured") -> None:
        """One training iteration: its time, and its energy when known (added to the counter)."""
        self._iter_time.labels(gpu=str(gpu)).observe(_check_amount(time_s, "time_s"))
        if energy_j is not None:
            e = _check_amount(energy_j, "energy_j")
            self._iter_energy.labels(gpu=str(gpu), scope=_check_label(scope, SCOPES, "scope"),
                                     source=_check_label(source, SOURCES, "source")).observe(e)
            self.add_energy(e, gpu, scope, source)

    def exposition(self) -> str:
        from prometheus_client import generate_latest  # noqa: PLC0415

        return generate_latest(self.registry).decode()


_default: Metrics | None = None
_default_lock = threading.Lock()


def active_metrics() -> Metrics | None:
    """The process-wide metrics if something created them (:func:`serve_metrics`,
    :func:`default_metrics`), else None: feeders check this so that a process nobody scrapes
    pays one global read per iteration and never imports prometheus_client."""
    return _default


def default_metrics() -> Metrics:
    """The process-wide metrics that :func:`serve_metrics` serves unless given others."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


@dataclass
class MetricsServer:
    addr: str
    port: int
    _httpd: object  # the bounded event-loop server (gearshift._http_metrics)

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.close()


def serve_metrics(port: int = 9400, addr: str = LOOPBACK, registry=None) -> MetricsServer:
    """Serve metrics over HTTP from a background thread; ``port=0`` picks a free port.

    ``registry`` defaults to :func:`default_metrics`'s. Loopback only unless ``addr`` says
    otherwise (``"0.0.0.0"`` exposes it to the network: put it behind your scraper's firewall).
    One event-loop thread serves every connection, with a 5 s deadline each and at most 64 open
    (see gearshift._http_metrics): idle connections cannot exhaust the process's descriptors.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

    from ._http_metrics import MetricsHTTPServer  # noqa: PLC0415

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics port {port!r} is out of range", "use a port in 1-65535")
    reg = registry if registry is not None else default_metrics().registry
    try:
        httpd = MetricsHTTPServer(addr, port, lambda: generate_latest(reg), CONTENT_TYPE_LATEST)
    except (OSError, OverflowError) as exc:
        raise ConfigError(f"cannot serve metrics on {addr}:{port}: "
                          f"{getattr(exc, 'strerror', None) or exc}",
                          "pick a free port (--metrics-port) or stop what is listening there") \
            from None
    return MetricsServer(addr, httpd.server_port, httpd)
