"""Energy monitor: RAPL wraparound, scopes and sources, node estimate, window errors."""

from pathlib import Path

import pytest

from gearshift.errors import ConfigError, DeviceError
from gearshift.model import DeviceFacts
from gearshift.monitor import Monitor, measure
from gearshift.monitor.rapl import RaplReader


class FakeDevice:
    """A device whose counters advance when told (like the simulator's)."""

    def __init__(self, kind="sim", power_w=300.0):
        self.kind = kind
        self.facts = DeviceFacts("Fake GPU", (1000, 900))
        self.power_w = power_w
        self.t = 0.0
        self.e = 0.0

    name = "Fake GPU (simulated)"

    def run(self, seconds):
        self.t += seconds
        self.e += seconds * self.power_w

    def energy_j(self):
        return self.e

    def time_s(self):
        return self.t


def make_zone(root: Path, name: str, zone: str, energy_uj: int, max_uj: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(zone + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_handles_wraparound(tmp_path):
    pkg = make_zone(tmp_path, "intel-rapl:0", "package-0", 999_000_000, 1_000_000_000)
    dram = make_zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "dram", 10, 1_000_000_000)
    make_zone(tmp_path, "intel-rapl:0/intel-rapl:0:1", "core", 5, 1_000_000_000)
    r = RaplReader.discover(tmp_path)
    assert sorted(z.label for z in r.zones) == ["package-0", "package-0/dram"]  # core not counted
    (pkg / "energy_uj").write_text("2000000\n")        # wrapped: 1 J to the top + 2 J after it
    (dram / "energy_uj").write_text("500000010\n")
    totals = r.poll()
    assert totals["package-0"] == pytest.approx(3.0)
    assert totals["package-0/dram"] == pytest.approx(500.0)
    assert r.scopes() == {"package-0": "cpu", "package-0/dram": "dram"}


def test_rapl_unreadable_is_reported_not_zero(tmp_path):
    r = RaplReader.discover(tmp_path / "missing")
    assert not r.zones and "does not exist" in r.unreadable["rapl"]


def test_window_on_simulated_device_reports_simulated_figures():
    dev = FakeDevice()
    mon = Monitor(devices=dev, node_idle_power_w=100.0)
    mon.begin_window("step")
    dev.run(2.0)
    m = mon.end_window("step")
    assert m.time_s == pytest.approx(2.0)
    assert m.energy_j("gpu") == pytest.approx(600.0)
    assert m.source == "simulated"
    node = [f for f in m.figures if f.scope == "node"][0]
    assert node.estimated and node.energy_j == pytest.approx(600.0 + 200.0)
    assert "cpu" in node.note and "not included" in node.note
    assert "cpu" in m.unavailable
    with pytest.raises(DeviceError, match="no cpu energy"):
        m.energy_j("cpu")
    assert "simulated" in str(m)


def test_measured_device_adds_rapl_figures(tmp_path):
    pkg = make_zone(tmp_path, "intel-rapl:0", "package-0", 0, 10**9)
    dev = FakeDevice(kind="nvml")
    mon = Monitor(devices=dev, rapl_root=str(tmp_path), node_idle_power_w=50.0)
    with mon.window("w") as h:
        dev.run(1.0)
        (pkg / "energy_uj").write_text("40000000\n")   # 40 J
    m = h.result
    assert m.source == "measured"
    assert m.energy_j("cpu") == pytest.approx(40.0)
    assert h.energy_j("gpu") == pytest.approx(300.0)   # read through the handle
    # time on a measured device is wall time: the rest of the node adds 50 W x that
    assert m.energy_j("node") == pytest.approx(340.0 + 50.0 * m.time_s)


def test_nested_windows_and_errors():
    dev = FakeDevice()
    mon = Monitor(devices=[dev])
    mon.begin_window("outer")
    dev.run(1.0)
    mon.begin_window("inner")
    dev.run(0.5)
    inner = mon.end_window("inner")
    outer = mon.end_window("outer")
    assert inner.time_s == pytest.approx(0.5) and outer.time_s == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="never begun"):
        mon.end_window("outer")
    mon.begin_window("x")
    with pytest.raises(ConfigError, match="already open"):
        mon.begin_window("x")
    with pytest.raises(ConfigError, match="negative"):
        Monitor(devices=dev, node_idle_power_w=-1)


def test_measure_uses_current_device():
    import gearshift
    from gearshift.monitor import set_current_device

    dev = FakeDevice()
    set_current_device(dev)
    try:
        with gearshift.measure("step") as m:
            dev.run(0.25)
        assert m.time_s == pytest.approx(0.25)
        assert m.energy_j() == pytest.approx(75.0)
        with measure("open") as h:
            with pytest.raises(AttributeError, match="still open"):
                h.time_s
    finally:
        set_current_device(None)


def test_nvml_counters_per_gpu_in_joules(monkeypatch):
    import sys
    import types

    energy_mj = {0: 1_000_000, 1: 5_000_000}
    fake = types.SimpleNamespace(
        NVMLError=RuntimeError,
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: energy_mj[h])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    mon = Monitor(devices="nvml", rapl=False)
    mon.begin_window("w")
    energy_mj[0] += 250_000          # 250 J on GPU 0
    energy_mj[1] += 1_500            # 1.5 J on GPU 1
    m = mon.end_window("w")
    assert m.gpu_energy_j == pytest.approx({"gpu0": 250.0, "gpu1": 1.5})
    assert m.energy_j("gpu") == pytest.approx(251.5) and m.source == "measured"
    with pytest.raises(DeviceError, match="does not exist"):
        Monitor(devices="nvml", gpu_indices=[3], rapl=False)
