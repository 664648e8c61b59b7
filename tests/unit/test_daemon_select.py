"""Which clock backend the trainer uses, `device="daemon:/path"`, and the daemon device."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from gearshift.daemon.select import choose_clock_backend, parse_daemon_device
from gearshift.errors import ConfigError, DeviceError


@pytest.fixture
def live_socket(tmp_path):
    path = str(tmp_path / "g.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    yield path
    s.close()


def test_explicit_daemon_device():
    c = choose_clock_backend("daemon:/run/x.sock", gpu_present=True, may_lock_clocks=True,
                             default_socket="/nonexistent")
    assert (c.backend, c.socket_path, c.device) == ("daemon", "/run/x.sock", "daemon:/run/x.sock")
    with pytest.raises(ConfigError):
        parse_daemon_device("daemon:")


def test_auto_choices(live_socket):
    pick = lambda **kw: choose_clock_backend("auto", default_socket=live_socket, **kw)  # noqa
    assert pick(gpu_present=True, may_lock_clocks=True, is_root=True).backend == "nvml"
    c = pick(gpu_present=True, may_lock_clocks=False, is_root=False)
    assert c.backend == "daemon" and c.socket_path == live_socket
    assert "not root" in c.why and live_socket in c.why
    # Root does not need the daemon; nor does anyone when the socket is missing.
    assert pick(gpu_present=True, may_lock_clocks=False, is_root=True).backend == "dry-run"
    c = choose_clock_backend("auto", True, False, "/nonexistent/x.sock", "needs root",
                             is_root=False)
    assert c.backend == "dry-run" and "needs root" in c.why
    assert pick(gpu_present=False, may_lock_clocks=False, is_root=True).backend == "sim"
    assert choose_clock_backend("sim", True, True, live_socket).backend == "sim"


def test_info_reports_the_clock_backend():
    env = dict(os.environ, GEARSHIFT_DEVICE="daemon:/tmp/gs-test.sock")
    out = subprocess.run([sys.executable, "-m", "gearshift", "info", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    cb = json.loads(out.stdout)["clock_backend"]
    assert cb == {"backend": "daemon", "device": "daemon:/tmp/gs-test.sock",
                  "why": "device is set to daemon:/tmp/gs-test.sock"}
    text = subprocess.run([sys.executable, "-m", "gearshift", "info"], capture_output=True,
                          text=True, env=env, timeout=60).stdout
    assert "clock backend: daemon" in text


def test_daemon_device_switches_through_the_daemon():
    from gearshift.daemon.device import DaemonDevice
    from test_daemon import Daemon

    d = Daemon(backend="sim", lease_s=1.0)
    try:
        dev = DaemonDevice.from_device(f"daemon:{d.socket}")
        assert dev.kind == "daemon"
        assert dev.facts.max_freq_mhz == 1980 and 345 in dev.facts.supported_freqs_mhz
        dev.set_sm_clock(1200)
        import time

        time.sleep(2.2)  # longer than the lease: the native heartbeat keeps it
        assert dev.client.status()["gpus"][0]["locked_mhz"] == 1200
        dev.reset_sm_clock()
        dev.reset_sm_clock()  # safe to repeat
        assert dev.client.status()["gpus"][0]["locked_mhz"] is None
        with pytest.raises(DeviceError, match="no GPU 4"):
            DaemonDevice(d.socket, gpu=4)
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


def test_resolve_device_daemon_and_auto_choice(monkeypatch, live_socket):
    from gearshift.config import Environment
    from gearshift.daemon.device import DaemonDevice
    from gearshift.devices import nvml_query
    from gearshift.integrations import device as integ
    from test_daemon import Daemon

    d = Daemon(backend="dry-run")
    try:
        dev = integ.resolve_device(f"daemon:{d.socket}")
        assert isinstance(dev, DaemonDevice)
        dev.set_sm_clock(1410)
        d.wait_event(r"lock gpu=0 mhz=1410")
        dev.close()
    finally:
        d.close()
    # auto: a GPU this process may not clock, not root, and the default socket exists.
    gpu = nvml_query.GpuInfo(index=0, name="NVIDIA H100", may_lock_clocks=False,
                             why_not="needs root")
    monkeypatch.setattr(nvml_query, "query", lambda: nvml_query.NvmlReport(True, gpus=[gpu]))
    monkeypatch.setattr(integ, "environment", lambda: Environment(daemon_socket=live_socket))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    kind, why = integ.auto_kind()
    assert kind == f"daemon:{live_socket}" and "not root" in why
    monkeypatch.setattr(integ, "environment", lambda: Environment(daemon_socket="/nonexistent"))
    assert integ.auto_kind()[0] == "dry-run"
