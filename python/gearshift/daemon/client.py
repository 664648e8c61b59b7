"""The trainer's and the CLI's side of the daemon socket (the C++ client, wrapped)."""

from __future__ import annotations

import contextlib

from .. import _native
from ..errors import ClockPermissionError, DeviceError, UnsupportedClockError

# Codes from csrc/daemon/protocol.h ErrorCode.
NOT_ALLOWED = 5
BAD_GPU = 10
UNSUPPORTED_CLOCK = 11
HELD_BY_OTHER = 12


class HeldByOtherError(DeviceError):
    """Another client holds the GPU's clock lease."""


def translate(exc: Exception) -> DeviceError:
    """A native DaemonError as the matching gearshift error (problem and fix kept)."""
    problem, fix, code = (list(exc.args) + ["", "", 0])[:3]
    if code == NOT_ALLOWED or "Permission denied" in problem:
        return ClockPermissionError(problem, fix or None)
    if code == UNSUPPORTED_CLOCK:
        return UnsupportedClockError(problem, fix or None)
    if code == HELD_BY_OTHER:
        return HeldByOtherError(problem, fix or None)
    return DeviceError(problem, fix or None)


@contextlib.contextmanager
def _translated():
    C = _native.native()
    try:
        yield
    except C.DaemonError as exc:
        raise translate(exc) from None


class DaemonClient:
    """One connection to the daemon; the GPUs it locks are leased to this connection."""

    def __init__(self, socket_path: str, timeout_s: float = 5.0):
        with _translated():
            self._c = _native.native().DaemonClient(str(socket_path), float(timeout_s))
        self.socket_path = str(socket_path)

    @property
    def gpu_count(self) -> int:
        return self._c.gpu_count

    @property
    def lease_s(self) -> float:
        return self._c.lease_s

    @property
    def backend(self) -> str:
        return self._c.backend

    @property
    def daemon_pid(self) -> int:
        return self._c.daemon_pid

    def lock(self, gpu: int, freq_mhz: int) -> None:
        with _translated():
            self._c.lock(int(gpu), int(freq_mhz))

    def reset(self, gpu: int) -> None:
        with _translated():
            self._c.reset(int(gpu))

    def heartbeat(self) -> None:
        with _translated():
            self._c.heartbeat()

    def status(self) -> dict:
        """``{"gpus": [{"index", "locked_mhz", "holder_uid", "holder_pid"}, ...]}``."""
        with _translated():
            return {"gpus": [g.to_dict() for g in self._c.status()]}

    def supported_sm_mhz(self, gpu: int = 0) -> list[int]:
        with _translated():
            return sorted(self._c.clocks(int(gpu)), reverse=True)

    def start_heartbeat(self) -> None:
        """Keep the lease alive from a native thread while this process is otherwise idle."""
        self._c.start_heartbeat()

    def close(self) -> None:
        self._c.close()

    @property
    def native_handle(self):
        return self._c

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def daemon_clock_backend(socket_path: str, timeout_s: float = 5.0):
    """The runtime's ``daemon`` clock backend (a native ClockBackend, usable by the controller
    thread without the GIL); errors arrive as gearshift.errors classes."""
    return _native.native().DaemonClockBackend(str(socket_path), float(timeout_s))
