"""Which clock backend the trainer uses, and why (shown by `gearshift info`)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ..errors import ConfigError

DAEMON_PREFIX = "daemon:"


@dataclass(frozen=True)
class ClockBackendChoice:
    backend: str              # "nvml" | "daemon" | "dry-run" | "sim"
    why: str
    socket_path: str = ""     # for "daemon"

    @property
    def device(self) -> str:
        return f"{DAEMON_PREFIX}{self.socket_path}" if self.backend == "daemon" else self.backend


def parse_daemon_device(device: str) -> str:
    """The socket path of ``daemon:/path/to.sock``."""
    if not device.startswith(DAEMON_PREFIX) or not device[len(DAEMON_PREFIX):]:
        raise ConfigError(f"'{device}' does not name a daemon socket",
                          "write device='daemon:/path/to.sock' (e.g. daemon:/run/gearshift/"
                          "gearshift.sock)")
    return device[len(DAEMON_PREFIX):]


def socket_exists(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def choose_clock_backend(device: str, gpu_present: bool, may_lock_clocks: bool,
                         default_socket: str, why_not_lock: str = "",
                         is_root: bool | None = None) -> ClockBackendChoice:
    """Explicit device first; on ``auto``: nvml when this process may lock clocks, the daemon
    when it is not root and the default daemon socket exists, else dry-run on a GPU, else sim."""
    if device.startswith(DAEMON_PREFIX):
        path = parse_daemon_device(device)
        return ClockBackendChoice("daemon", f"device is set to {device}", path)
    if device != "auto":
        return ClockBackendChoice(device, f"device is set to {device}")
    root = os.geteuid() == 0 if is_root is None else is_root
    if gpu_present and may_lock_clocks:
        return ClockBackendChoice("nvml", "a GPU is present and this process may lock clocks")
    if not root and socket_exists(default_socket):
        return ClockBackendChoice(
            "daemon", f"this process is not root and the gearshift daemon's socket exists at "
            f"{default_socket}", default_socket)
    if gpu_present:
        return ClockBackendChoice(
            "dry-run", "a GPU is present but this process may not lock clocks"
            + (f": {why_not_lock}" if why_not_lock else "")
            + f"; no daemon socket at {default_socket}")
    return ClockBackendChoice("sim", "no GPU here: the simulated GPU is used")
