"""The device interface every stage talks to: ``sim``, ``nvml`` and ``dry-run`` implement it.

Kept deliberately small: what profiling, enforcement and the energy monitor need.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..model import DeviceFacts


@runtime_checkable
class Device(Protocol):
    kind: str          # "sim" | "nvml" | "dry-run" | "daemon"
    facts: DeviceFacts # name, supported SM clocks, static/idle power

    @property
    def name(self) -> str: ...

    def energy_j(self) -> float:
        """A monotone energy counter in J (NVML total energy, or the simulator's integral)."""

    def time_s(self) -> float:
        """The clock that goes with ``energy_j`` (wall time, or simulated time)."""

    def set_sm_clock(self, freq_mhz: int) -> None:
        """Lock the SM clock (nvml), log it (dry-run) or apply it to the model (sim)."""

    def reset_sm_clock(self) -> None:
        """Back to the driver's default clocks. Must be safe to call at any time, repeatedly."""
