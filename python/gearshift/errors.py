"""One exception hierarchy. Every message says what is wrong and what to do about it."""

from __future__ import annotations


class GearshiftError(Exception):
    """Base of every error gearshift raises on purpose.

    ``fix`` is the action that resolves it; the CLI prints ``problem`` then ``fix`` and exits 2
    instead of showing a traceback.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")


class ConfigError(GearshiftError):
    """A configuration value or command-line option is invalid."""


class FormatError(GearshiftError):
    """A file (trace, partitioning, profile, frontier, schedule) is malformed."""

    def __init__(self, path: str | None, field: str, problem: str, fix: str):
        self.path = path
        self.field = field
        where = f"{path}: " if path else ""
        super().__init__(f"{where}field '{field}': {problem}", fix)


class VersionError(FormatError):
    """A file was written by a newer, incompatible gearshift."""


class ScheduleMismatchError(GearshiftError):
    """A schedule was made for another model or device than the one it is applied to."""


class TraceError(GearshiftError):
    """Tracing a training step failed or produced nothing usable."""


class DeviceError(GearshiftError):
    """A device (GPU, simulated GPU, daemon) cannot do what was asked."""


class UnsupportedClockError(DeviceError):
    """A clock that the device does not list as supported."""


class ClockPermissionError(DeviceError):
    """The process may not lock clocks (needs root, SYS_ADMIN or the gearshift daemon)."""


class NativeUnavailableError(GearshiftError):
    """The native extension gearshift._C could not be imported or lacks a capability."""


class InfeasibleSelectionError(GearshiftError):
    """No frontier point satisfies the requested objective; ``nearest`` is the closest one."""

    def __init__(self, problem: str, fix: str | None = None, nearest=None):
        self.nearest = nearest
        super().__init__(problem, fix)
