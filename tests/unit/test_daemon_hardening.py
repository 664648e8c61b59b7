"""The daemon under abuse (idle metrics connections, absurd leases) and a runtime whose clock
requests are refused (issue #18 item 7)."""

from __future__ import annotations

import contextlib
import io
import os
import resource
import socket
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from gearshift import _native
from gearshift.errors import ConfigError

pytestmark = pytest.mark.skipif(not _native.available(), reason="needs the native extension")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _soft_fd_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no fd limit line")


@pytest.mark.parametrize("lease", ["inf", "nan", "0", "-1", "1e9", "0.01", "3601"])
def test_lease_bounds_are_refused(lease, tmp_path):
    from gearshift.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ei:
        main(["daemon", "--backend", "dry-run", "--socket", str(tmp_path / "d.sock"),
              "--lease-s", lease])
    assert ei.value.code == 2
    assert "--lease-s" in err.getvalue() and "Traceback" not in err.getvalue()
    assert not (tmp_path / "d.sock").exists()  # refused before anything was opened


def test_native_server_checks_the_lease_too(tmp_path):
    C = _native.native()
    for lease in (float("inf"), float("nan"), 0.0, -1.0, 1e9):
        with pytest.raises(C.DaemonError, match="--lease-s"):
            C.DaemonServer(str(tmp_path / "d.sock"), C.DryRunBackend(), [], [], lease)
    C.DaemonServer(str(tmp_path / "d.sock"), C.DryRunBackend(), [], [], 0.1)


def test_idle_metrics_connections_cannot_starve_the_daemon(monkeypatch):
    pytest.importorskip("prometheus_client")
    from test_daemon import Daemon

    d = Daemon(backend="dry-run", extra=("--metrics-port", "0"))
    idle: list[socket.socket] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        pid = d.proc.pid
        url = d.stderr.read_text().split("metrics at ")[1].split()[0]
        host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
        assert _soft_fd_limit(pid) >= min(hard, 4096)  # the daemon raised its soft limit
        base_fds = _fds(pid)
        n = min(1500, want - 200)
        for _ in range(n):  # connect and say nothing, as a stuck or hostile scraper would
            s = socket.create_connection((host, int(port)), timeout=5)
            idle.append(s)
        time.sleep(0.5)
        fds_with_idle = _fds(pid)
        cpu0 = _cpu_s(pid)
        time.sleep(2.0)
        cpu_idle = _cpu_s(pid) - cpu0
        st = d.status()  # the clock socket still answers
        assert st["gpus"][0]["index"] == 0
        with urllib.request.urlopen(url, timeout=10) as resp:  # and so do scrapes
            assert b"gearshift_clock_switches" in resp.read()
        print(f"{n} idle metrics connections: daemon fds {base_fds} -> {fds_with_idle}, "
              f"CPU {cpu_idle / 2.0:.1%} of a core while they sat idle")
        assert fds_with_idle <= base_fds + 70  # at most 64 connections are kept open
        assert cpu_idle < 0.2  # 2 s wall: under 10 % of a core, no spinning
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        d.close()


def test_refused_clock_requests_are_counted_and_warned_once():
    from gearshift.daemon.client import daemon_clock_backend
    from gearshift.model import KernelRecord, KernelTrace, Schedule, ScheduleEntry
    from gearshift.runtime import Session
    from test_daemon import Daemon, hold_process

    d = Daemon(backend="dry-run", lease_s=30.0)
    holder = hold_process(d, 1410)  # another job holds GPU 0's clock through the daemon
    try:
        trace = KernelTrace([KernelRecord(f"k{i}", duration_s=1e-5) for i in range(6)])
        sched = Schedule([ScheduleEntry(0, 0, 1500), ScheduleEntry(1, 3, 1005)],
                         trace.signature(), "gpu", 6)
        backend = daemon_clock_backend(d.socket)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Session(sched, backend=backend, signal_path="fake-lockstep",
                         handle_signals=False) as s:
                s.replay(trace, iterations=3)
                refused = s.clock_refusals
                actions = {e.action for e in s.switch_events()}
        assert refused >= 2 and "failed" in actions and "switched" not in actions
        msgs = [str(w.message) for w in caught if "refused" in str(w.message)]
        assert len(msgs) == 1, msgs  # once, however many requests were refused
        assert "held" in msgs[0].lower() or "holds" in msgs[0].lower(), msgs[0]
        assert d.status()["gpus"][0]["locked_mhz"] == 1410  # the holder kept its clock
    finally:
        holder.terminate()
        holder.wait(timeout=10)
        d.close()


def test_metrics_port_is_checked_before_the_daemon_starts(tmp_path):
    from gearshift.daemon.server import run_daemon

    with pytest.raises(ConfigError, match="metrics-port"):
        run_daemon(str(tmp_path / "d.sock"), "dry-run", metrics_port=70000)


def test_wrapped_model_reports_refusals_and_falls_back():
    import torch

    from gearshift.integrations.config import GearshiftConfig
    from gearshift.integrations.runner import Runner

    class RefusedEnforcer:
        """Stands in for an Enforcer whose session's clock requests the daemon refuses."""
        clock_refusals, clock_refusal_reason = 0, None
        steps = closed = iterations = 0

        def step(self):
            self.steps += 1
            self.clock_refusals += 2
            self.clock_refusal_reason = "gpu 0 is held by uid 1000 pid 42"

        def close(self):
            self.closed += 1

    r = Runner(torch.nn.Linear(2, 2), GearshiftConfig(device="sim", progress=False))
    r.enforcer = enf = RefusedEnforcer()
    assert r.status()["clock_refusals"] == 0 and r.status()["phase"] != "fallback"
    x = torch.zeros(1, 2)
    with pytest.warns(RuntimeWarning, match="refused a clock request"):
        r.guarded_step(x)
    r.guarded_step(x)  # after the fallback the step runs untouched
    st = r.status()
    assert st["clock_refusals"] == 2 and st["phase"] == "fallback"
    assert "held by uid 1000" in st["fallback_reason"]
    assert enf.steps == 1 and enf.closed == 1


def test_native_accept_loop_rests_when_out_of_descriptors():
    from test_daemon import Daemon, raw_connect

    d = Daemon(backend="dry-run", lease_s=30.0)
    conns = []
    try:
        pid = d.proc.pid
        limit = _fds(pid) + 8
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        for _ in range(40):  # more clients than descriptors left: accept() fails with EMFILE
            conns.append(raw_connect(d.socket))
        d.wait_event(r"accept-paused reason=out-of-file-descriptors")
        cpu0 = _cpu_s(pid)
        time.sleep(2.0)
        cpu = _cpu_s(pid) - cpu0
        print(f"out of descriptors with 40 clients waiting: CPU {cpu / 2.0:.1%} of a core")
        assert cpu < 0.2  # resting, not spinning on the readable listening socket
        for s in conns:
            s.close()
        conns.clear()
        assert d.status()["gpus"][0]["index"] == 0  # serving again once descriptors free up
    finally:
        for s in conns:
            s.close()
        d.close()
