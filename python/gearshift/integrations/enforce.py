"""Run training iterations with a schedule enforced on a device, through the runtime.

The native runtime (gearshift.runtime.Session) enforces the schedule: its launch hook counts
kernels and its controller sets each partition's clock through a clock backend. On a real GPU
it does so while the model trains. On the simulated GPU each iteration replays the trace's
launches through the same hook on the runtime's fake device with the ``sim`` backend; the
clocks the controller set are then priced by the simulator (switch latency included), so the
device's counters and ``gearshift.measure`` report what the enforced iteration would cost.
"""

from __future__ import annotations

from ..errors import ScheduleMismatchError
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
    choices (``baseline``) on the simulator for comparison. Clocks are reset on ``close()``."""

    def __init__(self, device, trace: KernelTrace, schedule: Schedule,
                 partitioning: Partitioning | None = None, baseline: list[Choice] | None = None):
        self.device = device
        self.trace = trace
        self.schedule = schedule
        self.partitioning = partitioning or partitioning_of(schedule, trace)
        self.baseline = baseline
        self.simulated = hasattr(device, "run_iteration")
        self.iterations = 0
        self.switches = 0
        self.last = None
        self.session = self._open_session()

    def _open_session(self):
        from ..runtime import Session  # noqa: PLC0415

        facts = self.device.facts
        if self.simulated:
            latency = getattr(getattr(self.device, "preset", None), "switch_latency_s", 0.0)
            s = Session(self.schedule, backend="sim", trace=self.trace,
                        supported_mhz=list(facts.supported_freqs_mhz),
                        default_mhz=facts.max_freq_mhz, switch_latency_s=latency,
                        handle_signals=False)
        else:
            s = Session(self.schedule, backend=getattr(self.device, "backend", self.device.kind),
                        trace=self.trace, auto_wrap=False)
        return s.start()

    def step(self):
        self.iterations += 1
        if not self.simulated:
            self.session.step()
            return None
        events = self.session.replay(self.trace, 1)
        self.switches += sum(e.action == "switched" for e in events)
        self.last = self.device.run_iteration(self.trace, self.partitioning,
                                              self._enforced_choices(events))
        return self.last

    def _enforced_choices(self, events):
        """Per partition, the clock the runtime's controller left running (a partition without
        a switch keeps the previous one; a reset means the default top clock)."""
        top = self.device.facts.max_freq_mhz
        by_part = {}
        for e in events:
            if e.action in ("switched", "skipped_same", "superseded"):
                by_part[e.partition] = e.freq_mhz
            elif e.action == "reset":
                by_part[e.partition] = top
        current = getattr(self.device, "sm_clock_mhz", top)
        out = []
        for entry in self.schedule.entries:
            current = by_part.get(entry.partition, current)
            out.append((current, entry.overlap))
        return out

    def baseline_step(self):
        """The comparison run: every partition at the top clock, the framework's overlap."""
        choices = self.baseline or [(self.device.facts.max_freq_mhz, "none")] * len(
            self.partitioning)
        return self.device.run_iteration(self.trace, self.partitioning, choices)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        reset = getattr(self.device, "reset_sm_clock", None)
        if reset:
            reset()
