"""Run training iterations with a schedule enforced on a device, through the runtime.

The native runtime (gearshift.runtime.Session) enforces the schedule: its launch hook counts
kernels and its controller sets each partition's clock through a clock backend. On a real GPU
it does so while the model trains. On the simulated GPU each iteration replays the trace's
launches through the same hook on the runtime's fake device with the ``sim`` backend; the
clocks the controller set are then priced by the simulator (switch latency included), so the
device's counters and ``gearshift.measure`` report what the enforced iteration would cost.
"""

from __future__ import annotations

import time

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
        self.simulated = device.capabilities.simulated
        self.iterations = 0
        self.switches = 0
        self.last = None
        self._step_started_s: float | None = None   # wall clock of the last real-GPU step
        self._events_seen = 0                        # switch events already counted (real GPU)
        self.session = self._open_session()

    def _open_session(self):
        from ..runtime import Session  # noqa: PLC0415

        if self.simulated:
            # the simulated device's own sim backend: its clocks, top clock and switch latency
            s = Session(self.schedule, backend=self.device, trace=self.trace,
                        handle_signals=False)
        else:
            s = Session(self.schedule, backend=self.device, trace=self.trace, auto_wrap=False)
        return s.start()

    @property
    def clock_refusals(self) -> int:
        """Clock requests the backend refused (another holder, no permission): above 0, the
        schedule is not what the GPU runs (the runner reports it and falls back)."""
        return self.session.clock_refusals if self.session is not None else 0

    @property
    def clock_refusal_reason(self) -> str | None:
        return self.session.clock_refusal_reason if self.session is not None else None

    def step(self):
        self.iterations += 1
        if not self.simulated:
            self.session.step()
            self._feed_real_metrics()
            return None
        events = self.session.replay(self.trace, 1)
        switched = [e for e in events if e.action == "switched"]
        self.switches += len(switched)
        self.last = self.device.run_iteration(self.trace, self.partitioning,
                                              self._enforced_choices(events))
        from ..metrics import active_metrics  # noqa: PLC0415

        metrics = active_metrics()
        if metrics is not None:
            gpu = self._gpu_index()
            metrics.observe_iteration(self.last.time_s, self.last.energy_j, gpu=gpu,
                                      scope="gpu", source="simulated")
            if switched:
                metrics.count_switch(gpu, len(switched))
                metrics.set_clock(gpu, switched[-1].freq_mhz)
        return self.last

    def _gpu_index(self) -> int:
        index = getattr(self.device, "index", 0)  # real devices: the GPU they drive
        return index if isinstance(index, int) else 0

    def _feed_real_metrics(self) -> None:
        """On a GPU an iteration is the wall time between two ``step()`` calls; its energy is
        not known here (gearshift.measure windows read it), so only time and switches go in."""
        from ..metrics import active_metrics  # noqa: PLC0415

        now = time.perf_counter()
        started, self._step_started_s = self._step_started_s, now
        metrics = active_metrics()
        if metrics is None:
            return
        gpu = self._gpu_index()
        if started is not None:
            metrics.observe_iteration(now - started, gpu=gpu)
        events = self.session.switch_events()
        new = [e for e in events[self._events_seen:] if e.action == "switched"]
        self._events_seen = len(events)
        if new:
            metrics.count_switch(gpu, len(new))
            metrics.set_clock(gpu, new[-1].freq_mhz)

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
