"""gearshift.compile: config, lazy API, wrapping a user's own module on CPU with the simulator."""

import json

import pytest

import gearshift
from gearshift.errors import ConfigError, FormatError
from gearshift.integrations import GearshiftConfig


def test_config_round_trips_through_json(tmp_path):
    cfg = GearshiftConfig(objective="max-slowdown=1.05", device="sim", sim_preset="a100-sxm",
                          schedule_path="s.json", overlaps=("serial", "window0-99"), progress=False)
    again = GearshiftConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg
    cfg.save(tmp_path / "c.json")
    assert GearshiftConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(Exception):
        cfg.objective = "iso-energy"          # frozen


@pytest.mark.parametrize("bad", ["max-slowdown=0.9", "max-slowdown=inf", "cost=2", "cost=",
                                 "iso-time=1", "deadline=0", "speedy"])
def test_bad_objectives_are_one_line_errors_with_a_fix(bad):
    with pytest.raises(ConfigError) as exc:
        GearshiftConfig(objective=bad)
    assert "\n" not in exc.value.problem and exc.value.fix


def test_objectives_are_stored_in_their_canonical_form():
    assert GearshiftConfig(objective="ISO-TIME").objective == "iso-time"
    assert GearshiftConfig(objective="Max-Slowdown = 1.050").objective == "max-slowdown=1.05"
    assert GearshiftConfig(objective="fastest").objective == "fastest"


def test_bad_device_and_unknown_config_field():
    with pytest.raises(ConfigError, match="unknown device"):
        GearshiftConfig(device="tpu")
    with pytest.raises(FormatError, match="not a config field"):
        GearshiftConfig.from_json({"format": "gearshift.config", "version": 1, "speed": 3})


def test_public_api_is_lazy():
    assert gearshift.GearshiftConfig is GearshiftConfig
    assert callable(gearshift.compile) and callable(gearshift.measure)
    with pytest.raises(AttributeError):
        gearshift.does_not_exist


def test_a_device_that_cannot_lock_clocks_says_what_to_do(monkeypatch):
    from gearshift.devices import nvml_query
    from gearshift.errors import ClockPermissionError, DeviceError
    from gearshift.devices import open_device

    monkeypatch.setattr(nvml_query, "query",
                        lambda: nvml_query.NvmlReport(False, "NVML unavailable: no driver"))
    with pytest.raises(DeviceError, match="needs an NVIDIA GPU") as exc:
        open_device("nvml")
    assert "device='sim'" in exc.value.fix
    gpu = nvml_query.GpuInfo(0, "NVIDIA H100 80GB HBM3", supported_sm_mhz=[1980, 1965],
                             may_lock_clocks=False, why_not="needs root")
    monkeypatch.setattr(nvml_query, "query", lambda: nvml_query.NvmlReport(True, gpus=[gpu]))
    with pytest.raises(ClockPermissionError, match="may not lock the SM clocks") as exc:
        open_device("nvml")
    assert "gearshift daemon" in exc.value.fix and "dry-run" in exc.value.fix
