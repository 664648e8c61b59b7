"""The one device registry: kinds, the `auto` choice, `device="daemon:/path"` end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from gearshift.config import Environment
from gearshift.devices import Capabilities, choose_auto, kinds, open_device, register
from gearshift.devices import nvml_query
from gearshift.devices.open import _KINDS, describe, parse
from gearshift.errors import ConfigError, DeviceError


@pytest.fixture
def live_socket(tmp_path):
    path = str(tmp_path / "g.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    yield path
    s.close()


def _gpu(may_lock: bool):
    return nvml_query.GpuInfo(index=0, name="NVIDIA H100", may_lock_clocks=may_lock,
                              why_not="" if may_lock else "needs root")


def test_device_strings_parse_once_with_one_line_errors():
    assert parse("daemon:/run/x.sock") == ("daemon", "/run/x.sock")
    assert parse("SIM") == ("sim", "") and parse("auto") == ("auto", "")
    assert kinds()[:4] == ("sim", "nvml", "dry-run", "daemon")
    for bad, words in [("daemon:", "needs /path/to.sock"), ("tpu", "unknown device"),
                       ("sim:fast", "takes no argument"), ("auto:x", "unknown device")]:
        with pytest.raises(ConfigError, match=words) as exc:
            parse(bad)
        assert "\n" not in exc.value.problem and exc.value.fix


def test_auto_is_chosen_once_with_its_reason(live_socket):
    env = Environment(daemon_socket=live_socket, sim_preset="a40")
    pick = lambda gpus, root, **kw: choose_auto(  # noqa: E731
        nvml_query.NvmlReport(bool(gpus), "no driver", gpus=gpus), env=kw.get("env", env),
        is_root=root)
    assert pick([_gpu(True)], True).device == "nvml"
    c = pick([_gpu(False)], False)
    assert c.device == f"daemon:{live_socket}" and c.kind == "daemon"
    assert "not root" in c.why and live_socket in c.why
    # Root does not need the daemon; nor does anyone when the socket is missing.
    assert pick([_gpu(False)], True).device == "dry-run"
    c = pick([_gpu(False)], False, env=Environment(daemon_socket="/nonexistent/x.sock"))
    assert c.device == "dry-run" and "needs root" in c.why
    c = pick([], True)
    assert c.device == "sim" and "a40" in c.why and "no driver" in c.why
    c = choose_auto(env=Environment(device="daemon:/x.sock"))
    assert c.device == "daemon:/x.sock" and "GEARSHIFT_DEVICE" in c.why


def test_open_sim_states_its_capabilities():
    dev = open_device("sim", preset="a100-sxm")
    assert dev.kind == "sim" and "A100" in dev.name
    cap = dev.capabilities
    assert cap.simulated and cap.clock_control and cap.energy_source == "simulated"
    assert cap.switch_latency_s == dev.preset.switch_latency_s > 0
    with pytest.raises(ConfigError, match="GPU index"):
        open_device("sim", gpu_index=-1)


def test_real_gpu_kinds_say_what_to_do_without_a_gpu_or_permission(monkeypatch):
    monkeypatch.setattr(nvml_query, "query",
                        lambda: nvml_query.NvmlReport(False, "NVML unavailable: no driver"))
    for kind in ("nvml", "dry-run"):
        with pytest.raises(DeviceError, match="needs an NVIDIA GPU") as exc:
            open_device(kind)
        assert "device='sim'" in exc.value.fix


def test_registering_a_kind_is_one_call(monkeypatch):
    monkeypatch.setattr("gearshift.devices.open._KINDS", dict(_KINDS))
    seen = {}

    def opener(arg, *, preset=None, gpu_index=0, **options):
        seen.update(arg=arg, preset=preset, gpu_index=gpu_index)
        return open_device("sim", preset=preset)

    register("test-gpu", opener, help="test kind")
    assert "test-gpu" in kinds() and "test-gpu" in describe()
    from gearshift.integrations import GearshiftConfig

    GearshiftConfig(device="test-gpu")          # the config accepts it at once
    dev = open_device("test-gpu", preset="a40", gpu_index=0)
    assert seen == {"arg": "", "preset": "a40", "gpu_index": 0} and "A40" in dev.name
    with pytest.raises(ConfigError, match="already registered"):
        register("test-gpu", opener, help="again")
    with pytest.raises(ConfigError, match="cannot be a device kind"):
        register("auto", opener, help="no")


def test_devices_package_does_not_import_the_daemon_package():
    code = ("import sys, gearshift.devices, gearshift.devices.open; "
            "print([m for m in sys.modules if m.startswith('gearshift.daemon')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_info_reports_the_default_device_and_clock_backend():
    env = dict(os.environ, GEARSHIFT_DEVICE="daemon:/tmp/gs-test.sock")
    out = subprocess.run([sys.executable, "-m", "gearshift", "info", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["default_device"]["device"] == "daemon:/tmp/gs-test.sock"
    assert data["clock_backend"]["backend"] == "daemon"
    assert "GEARSHIFT_DEVICE" in data["clock_backend"]["why"]
    text = subprocess.run([sys.executable, "-m", "gearshift", "info"], capture_output=True,
                          text=True, env=env, timeout=60).stdout
    assert "clock backend: daemon" in text


def test_daemon_device_switches_through_the_daemon():
    import time

    from test_daemon import Daemon

    # 3 s: the native heartbeat (every lease/3) must outlast scheduling delays on a loaded
    # machine (0.7 s measured at nice 19), which a 1 s lease's margin did not always
    d = Daemon(backend="sim", lease_s=3.0)
    try:
        dev = open_device(f"daemon:{d.socket}")
        assert dev.kind == "daemon" and not dev.capabilities.simulated
        assert dev.capabilities.clock_control
        assert dev.facts.max_freq_mhz == 1980 and 345 in dev.facts.supported_freqs_mhz
        assert dev.clock_backend() is dev.clock_backend()   # one connection, one lease
        dev.set_sm_clock(1200)
        time.sleep(3.5)  # longer than the lease: the native heartbeat keeps it
        with d.client() as c:
            assert c.status()["gpus"][0]["locked_mhz"] == 1200
        dev.reset_sm_clock()
        dev.reset_sm_clock()  # safe to repeat
        with d.client() as c:
            assert c.status()["gpus"][0]["locked_mhz"] is None
        with pytest.raises(DeviceError, match="no GPU 4"):
            open_device(f"daemon:{d.socket}", gpu_index=4)
        dev.close()
        assert not any("lease-expired" in e for e in d.events())
    finally:
        d.close()


def test_native_daemon_clock_backend():
    from gearshift.daemon.client import daemon_clock_backend
    from gearshift.errors import ClockPermissionError, UnsupportedClockError
    from test_daemon import Daemon

    d = Daemon(backend="dry-run")
    try:
        b = daemon_clock_backend(d.socket)
        assert b.name == "daemon" and b.device_count() == 1
        mhz = b.supported_sm_mhz(0)
        assert mhz[0] == 1980 and mhz[-1] == 345  # highest first, as the interface says
        b.lock_sm_mhz(0, 1410)
        d.wait_event(r"lock gpu=0 mhz=1410")
        with pytest.raises(UnsupportedClockError):
            b.lock_sm_mhz(0, 1411)
        with pytest.raises(DeviceError, match="does not exist"):
            b.lock_sm_mhz(2, 1410)
        b.reset(0)
        b.reset(0)
        d.wait_event(r"reset gpu=0 reason=released")
        os.chmod(d.socket, 0o600)
        if os.geteuid() != 0:
            with pytest.raises(ClockPermissionError):
                daemon_clock_backend(d.socket)
    finally:
        d.close()


def test_capabilities_are_plain_values():
    c = Capabilities(simulated=False, clock_control=False, energy_source="measured")
    assert c.switch_latency_s is None and not c.needs_step
