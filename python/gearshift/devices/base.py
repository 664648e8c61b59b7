"""The device interface every stage talks to, and what a device says it can do.

Kept deliberately small: what profiling, enforcement, the runtime and the energy monitor need.
Callers ask ``device.capabilities`` what a device can do; they never probe for attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..model import DeviceFacts


@dataclass(frozen=True)
class Capabilities:
    """What a device can do, stated by the device itself.

    - ``simulated``: time and energy come from the simulator; the device can price a whole
      iteration of a trace without running it (``run_iteration``, ``profile_options``).
    - ``clock_control``: ``set_sm_clock`` really changes the GPU's clock (dry-run: logged only).
    - ``energy_source``: where ``energy_j`` comes from: "simulated", "measured" (a hardware
      counter) or "none" (the device cannot measure energy by itself).
    - ``switch_latency_s``: the time one clock switch takes on the device, when known (the
      simulated preset's published figure); None = not known here.
    - ``needs_step``: profiling needs the user's training step to run (a real GPU).
    """

    simulated: bool
    clock_control: bool
    energy_source: str
    switch_latency_s: float | None = None
    needs_step: bool = False


@runtime_checkable
class Device(Protocol):
    kind: str                    # the registry's kind name: "sim" | "nvml" | "dry-run" | "daemon"
    facts: DeviceFacts           # name, supported SM clocks, static/idle power
    capabilities: Capabilities

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

    def clock_backend(self):
        """The native clock backend (``gearshift._C.ClockBackend``) the runtime's controller
        thread drives for this device; one per device, made on first use."""
