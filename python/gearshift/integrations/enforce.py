"""Run training iterations with a schedule enforced on a device.

On the simulated GPU an iteration is the trace's kernels replayed through the simulator under
the schedule's per-partition clocks and overlaps (switch latency included), so the device's
counters and ``gearshift.measure`` report what that iteration would cost. On a real GPU the
native runtime (gearshift.runtime) switches clocks at partition boundaries.
"""

from __future__ import annotations

from ..errors import NativeUnavailableError, ScheduleMismatchError
from ..model import Choice, KernelTrace, Partitioning, Schedule


def partitioning_of(schedule: Schedule, trace: KernelTrace) -> Partitioning:
    """The partitioning a schedule implies for ``trace`` (its start kernels as cuts)."""
    if schedule.num_kernels != len(trace):
        raise ScheduleMismatchError(
            f"the schedule covers {schedule.num_kernels} kernels, this model's step launches "
            f"{len(trace)}", "re-plan for this model (delete the saved schedule)")
    return Partitioning.from_cuts(trace, [e.start_kernel for e in schedule.entries],
                                  [e.label for e in schedule.entries])


class Enforcer:
    """One iteration per ``step()`` under ``schedule``; ``baseline_step()`` runs the all-max
    choices (``baseline``) for comparison. Clocks are reset on ``close()``."""

    def __init__(self, device, trace: KernelTrace, schedule: Schedule,
                 partitioning: Partitioning | None = None, baseline: list[Choice] | None = None):
        self.device = device
        self.trace = trace
        self.schedule = schedule
        self.partitioning = partitioning or partitioning_of(schedule, trace)
        self.baseline = baseline
        self.iterations = 0
        self.last = None
        self._session = None
        if not hasattr(device, "run_iteration"):
            self._session = _native_session(device, schedule)

    def step(self):
        self.iterations += 1
        if self._session is not None:
            self._session.begin_iteration()
            return None
        self.last = self.device.run_iteration(self.trace, self.partitioning, self.schedule)
        return self.last

    def baseline_step(self):
        """The comparison run: all partitions at the top clock with the framework's overlap."""
        if self._session is not None:
            raise NativeUnavailableError("baseline runs on a real GPU are plain training steps",
                                         "train without gearshift to measure the baseline")
        choices = self.baseline or [(self.device.facts.max_freq_mhz, "none")] * len(
            self.partitioning)
        return self.device.run_iteration(self.trace, self.partitioning, choices)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        reset = getattr(self.device, "reset_sm_clock", None)
        if reset:
            reset()


def _native_session(device, schedule: Schedule):
    try:
        from ..runtime import Session  # noqa: PLC0415
    except ImportError as exc:
        raise NativeUnavailableError(
            f"enforcing a schedule on {device.name} needs the native runtime ({exc})",
            "build gearshift with its native extension (`make setup`), or use device='sim'"
        ) from exc
    return Session(schedule, device=device)
