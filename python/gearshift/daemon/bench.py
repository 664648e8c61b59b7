"""What a clock switch through the daemon adds over the same switch made in-process.

Both paths use the same backend kind (dry-run by default) and the same clock sequence; both
are timed in C++ so Python's call overhead is in neither. The daemon is a separate process,
as in production, started here on a private socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from .. import _native
from ..errors import DeviceError

CLOCKS_MHZ = (1410, 1395)  # two supported clocks of the simulated H100 SXM


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _start_daemon(backend: str, workdir: str) -> tuple[subprocess.Popen, str]:
    sock = os.path.join(workdir, "bench.sock")
    log = open(os.path.join(workdir, "stderr.txt"), "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "gearshift", "daemon", "--socket", sock,
                             "--backend", backend, "--log", os.path.join(workdir, "events.log")],
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            with open(os.path.join(workdir, "stderr.txt")) as fh:
                raise DeviceError(f"the benchmark daemon exited: {fh.read().strip()}",
                                  "run `gearshift daemon --socket /tmp/x.sock --backend "
                                  f"{backend}` by hand to see why")
        if os.path.exists(sock):
            try:
                _native.native().DaemonClient(sock, 5.0).close()
                return proc, sock
            except Exception:
                pass
        time.sleep(0.02)
    proc.kill()
    raise DeviceError("the benchmark daemon did not start within 60 s", "check the machine's load")


def bench_daemon_added_us(n: int = 5000, backend: str = "dry-run", warmup: int = 500) -> dict:
    """Median and p99 of a lock through the daemon and in-process; ``daemon_added_us`` is the
    difference of the medians (the figure `gearshift bench switch` prints)."""
    C = _native.native()
    workdir = tempfile.mkdtemp(prefix="gsbench", dir="/tmp")
    proc = None
    try:
        proc, sock = _start_daemon(backend, workdir)
        client = C.DaemonClient(sock, 5.0)
        try:
            C.daemon_time_client_locks(client, 0, list(CLOCKS_MHZ), warmup)
            through = C.daemon_time_client_locks(client, 0, list(CLOCKS_MHZ), n)
            client.reset(0)
        finally:
            client.close()
        from .server import make_backend  # noqa: PLC0415

        same_kind, _ = make_backend(backend)  # what the daemon applies clocks with
        C.daemon_time_backend_locks(same_kind, 0, list(CLOCKS_MHZ), warmup)
        direct = C.daemon_time_backend_locks(same_kind, 0, list(CLOCKS_MHZ), n)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    med_d = statistics.median(through) / 1e3
    med_i = statistics.median(direct) / 1e3
    return {
        "backend": backend,
        "n": n,
        "daemon_median_us": med_d,
        "daemon_p99_us": _percentile(through, 0.99) / 1e3,
        "inprocess_median_us": med_i,
        "inprocess_p99_us": _percentile(direct, 0.99) / 1e3,
        "daemon_added_us": med_d - med_i,
    }
