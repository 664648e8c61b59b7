"""Clock control without root: the trainer asks a privileged daemon that owns the GPUs' clocks.

``gearshift daemon`` (run as root, e.g. by systemd) listens on a Unix socket and applies SM
clocks with one of the runtime's clock backends (nvml, dry-run, sim). Every lock is leased to
one live connection: the daemon resets the GPU when its client disconnects, dies or stops
heartbeating, and resets every GPU it touched when it stops. See docs/daemon.md.
The trainer's side is the ``daemon:/path.sock`` device (``gearshift.devices``).

Importing this package loads nothing native; each function imports what it needs.
"""

from __future__ import annotations

__all__ = ["DaemonClient", "bench_daemon_added_us", "run_daemon"]


def __getattr__(name):
    if name == "DaemonClient":
        from .client import DaemonClient

        return DaemonClient
    if name == "run_daemon":
        from .server import run_daemon

        return run_daemon
    if name == "bench_daemon_added_us":
        from .bench import bench_daemon_added_us

        return bench_daemon_added_us
    raise AttributeError(name)
