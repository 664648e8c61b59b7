"""A training process under gearshift.compile feeds its Prometheus metrics (issue #10)."""

from __future__ import annotations

import urllib.request

import pytest

import gearshift

torch = pytest.importorskip("torch")
pytest.importorskip("prometheus_client")
for mod in ("gearshift.trace", "gearshift.partition", "gearshift.devices.sim",
            "gearshift.search.iteration"):
    pytest.importorskip(mod)

from test_metrics import sample, scrape  # noqa: E402


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 64)
        self.b = torch.nn.Linear(64, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def train(model, steps):
    torch.manual_seed(0)
    x = torch.randn(32, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_compiled_training_feeds_served_metrics(monkeypatch):
    import gearshift.metrics as metrics  # noqa: PLC0415

    monkeypatch.setattr(metrics, "_default", None)   # a fresh process-wide registry
    torch.manual_seed(0)
    g = gearshift.compile(Small(), device="sim", progress=False)
    assert metrics.active_metrics() is None          # nothing recorded until someone serves
    srv = gearshift.serve_metrics(0)
    steps = 3
    try:
        assert srv.addr == "127.0.0.1"
        with gearshift.measure("train") as m:
            train(g, steps)
        text = scrape(srv.url)
    finally:
        srv.close()
        g.gearshift.close()
    assert sample(text, "gearshift_iteration_time_seconds_count", gpu=0) == steps
    assert sample(text, "gearshift_iteration_time_seconds_sum", gpu=0) == pytest.approx(
        m.time_s, rel=1e-6)
    assert sample(text, "gearshift_iteration_energy_joules_count", gpu=0, scope="gpu",
                  source="simulated") == steps
    energy = sample(text, "gearshift_energy_joules_total", gpu=0, scope="gpu", source="simulated")
    assert energy > 0
    # the counter holds the simulated energy of exactly the iterations the window saw
    assert energy == pytest.approx(m.energy_j("gpu"), rel=1e-6)
    run = g.gearshift
    assert run.enforcer.switches >= 1
    assert sample(text, "gearshift_clock_switches_total", gpu=0) == run.enforcer.switches
    assert sample(text, "gearshift_sm_clock_mhz", gpu=0) == run.schedule.entries[-1].freq_mhz


def test_unserved_process_records_nothing(monkeypatch):
    import gearshift.metrics as metrics  # noqa: PLC0415

    monkeypatch.setattr(metrics, "_default", None)
    g = gearshift.compile(Small(), device="sim", progress=False)
    train(g, 2)
    g.gearshift.close()
    assert metrics.active_metrics() is None
