"""Prometheus metrics: the series, their validation, and scraping over loopback."""

from __future__ import annotations

import re
import urllib.request

import pytest

from gearshift.errors import ConfigError
from gearshift.metrics import Metrics, serve_metrics


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return resp.read().decode()


def sample(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"(\w+)(\{(.*)\})? (\S+)$", line)
        if m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(4))
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_series_and_values():
    m = Metrics()
    m.set_clock(0, 1410)
    m.set_power(0, 312.5)
    m.count_switch(0)
    m.count_switch(0, 2)
    m.observe_iteration(0.02, 6.0, gpu=0)
    m.observe_iteration(0.03, 9.0, gpu=0)
    m.add_energy(50.0, gpu=0, scope="node", source="simulated")
    text = m.exposition()
    assert sample(text, "gearshift_sm_clock_mhz", gpu=0) == 1410
    assert sample(text, "gearshift_power_watts", gpu=0) == 312.5
    assert sample(text, "gearshift_clock_switches_total", gpu=0) == 3
    assert sample(text, "gearshift_energy_joules_total", gpu=0, scope="gpu",
                  source="measured") == 15.0
    assert sample(text, "gearshift_energy_joules_total", gpu=0, scope="node",
                  source="simulated") == 50.0
    assert sample(text, "gearshift_iteration_time_seconds_count", gpu=0) == 2
    assert sample(text, "gearshift_iteration_time_seconds_sum", gpu=0) == pytest.approx(0.05)
    assert sample(text, "gearshift_iteration_time_seconds_bucket", gpu=0, le="0.025") == 1
    assert sample(text, "gearshift_iteration_energy_joules_sum", gpu=0, scope="gpu",
                  source="measured") == 15.0


@pytest.mark.parametrize("call", [
    lambda m: m.add_energy(1.0, scope="rack"),
    lambda m: m.add_energy(1.0, source="guessed"),
    lambda m: m.add_energy(-1.0),
    lambda m: m.observe_iteration(float("nan")),
    lambda m: m.set_power(0, float("inf")),
])
def test_bad_values_are_refused(call):
    with pytest.raises(ConfigError):
        call(Metrics())


def test_serve_metrics_on_loopback():
    m = Metrics()
    m.set_clock(1, 990)
    srv = serve_metrics(0, registry=m.registry)
    try:
        assert srv.addr == "127.0.0.1"
        assert srv.url.startswith("http://127.0.0.1:")
        text = scrape(srv.url)
        assert sample(text, "gearshift_sm_clock_mhz", gpu=1) == 990
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            serve_metrics(srv.port, registry=m.registry)  # the port is taken
    finally:
        srv.close()


def test_public_serve_metrics_uses_the_process_metrics():
    import gearshift
    from gearshift.metrics import default_metrics

    default_metrics().count_switch(5)
    srv = gearshift.serve_metrics(0)
    try:
        assert sample(scrape(srv.url), "gearshift_clock_switches_total", gpu=5) >= 1
    finally:
        srv.close()
