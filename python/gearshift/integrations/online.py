"""The GPU path inside the training loop: record -> profile -> plan -> enforce (drift -> profile).

``OnlinePath.on_step()`` runs at the start of every training step (the wrapped model's forward).
It first closes the step before (on the fake GPU: plays it), then moves the phase machine:

- record: one step under a record-mode runtime session; the CUPTI launch hook records the real
  kernel sequence into a KernelTrace (its signature is what the runtime checks later);
- profile: partition that trace, then run rounds of steps: a reference round (every partition
  at the top clock), then one round per (partition, option) the search asks for, that partition
  at the option and the rest at the reference; partition energies come from whole-step energy
  differences, each round running until the energy counter's error bound allows <= 1 % per
  option (``gearshift.profile.online``, docs/online-profiling.md); without permission to lock
  clocks, only the reference runs and the other clocks are predicted from the simulated GPU's
  response fitted to it;
- plan: search the frontier and select by the objective (one step runs untouched meanwhile);
  the schedule is saved to ``schedule_path``, so the next run goes from record to enforce;
- enforce: every step under the schedule; partitions whose measured time drifts from the
  profile by more than ``DRIFT_TOLERANCE`` for ``DRIFT_STEPS`` steps are profiled again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..model import Schedule
from ..profile.progress import Stage

log = logging.getLogger("gearshift.online")

DRIFT_TOLERANCE = 0.10
DRIFT_STEPS = 3


def _say(config, text: str) -> None:
    if config.progress:
        from rich.console import Console  # noqa: PLC0415

        Console(stderr=True, soft_wrap=True).print(f"[bold]gearshift[/]: {text}")


# record at most this many steps waiting for two consecutive ones to launch the same kernels
MAX_RECORD_STEPS = 8

class OnlinePath:
    """Phases on a device with a runtime (fake-gpu, nvml, dry-run, daemon)."""

    def __init__(self, runner):
        self.r = runner
        self.device = runner.device
        self.config = runner.config
        self.phase = "record"
        self.session = None
        self.session_schedule: Schedule | None = None
        self.trace = None                 # the recorded KernelTrace
        self.partitioning = None
        self.search = None
        self.round = None
        self.profile = None
        self.predicted = not getattr(self.device, "may_lock_clocks", True)
        self.drifted: list[int] = []
        self._drift_count: dict[int, int] = {}
        self._enforce_prev = None
        self.op_trace = None
        self.overlap_note: str | None = None

    # ------------------------------------------------------------------ step boundary
    def on_step(self, example_inputs) -> None:
        sample = self._finish_previous()
        if self._clocks_refused():
            sample = None                  # that step ran at the default clock, not the option
        if self.phase == "record":
            if self.session is None:
                self._start_record(example_inputs)
            else:
                self._end_record()
        elif self.phase == "profile":
            self._profile_step(sample)
        elif self.phase == "plan":
            self._plan()
        elif self.phase == "enforce":
            self._check_drift(sample)
        if self.session is not None:
            self.session.step()

    def _finish_previous(self):
        if self.session is None:
            return None
        return self.device.play_step(self.session, self.session_schedule)

    def _clocks_refused(self) -> bool:
        """The GPU refused a clock lock (NVML_ERROR_NO_PERMISSION after all, another holder):
        say so once, and go on as a machine without permission does: the default clock
        measured, the others predicted, the schedule enforced in dry-run."""
        s = self.session
        if self.predicted or s is None or not s.clock_refusals:
            return False
        import warnings  # noqa: PLC0415

        reason = s.clock_refusal_reason or "no reason given"
        warnings.warn(f"gearshift: the GPU refused to lock a clock ({reason}); profiling the "
                      "default clock only, predicting the others, and enforcing in dry-run "
                      "(clocks stay at their defaults)", RuntimeWarning, stacklevel=2)
        self.predicted = True
        lost = getattr(self.device, "clock_permission_lost", None)
        if lost is not None:
            lost(reason)                   # its clock backend is dry-run from now on
        self._close_session()              # resets the clock
        if self.partitioning is not None:
            self._start_profile(list(range(len(self.partitioning))))
        return True

    # ------------------------------------------------------------------ sessions
    def _open(self, schedule=None, mode="apply", trace=None) -> None:
        from ..runtime import Session  # noqa: PLC0415

        self._close_session()
        opts = self.device.session_options()
        self.session = Session(schedule, mode=mode, trace=trace, **opts).start()
        self.session_schedule = schedule
        self.device.session_started(self.session)

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
            self.session_schedule = None

    def close(self) -> None:
        if self.session is not None and self.op_trace is not None:
            try:
                self._finish_previous()
            finally:
                self._close_session()
        self._close_session()

    # ------------------------------------------------------------------ record
    def _start_record(self, example_inputs) -> None:
        attach = getattr(self.device, "attach", None)
        if attach is not None:                 # the fake GPU runs the step's torch ops
            from ..trace import trace_step  # noqa: PLC0415

            import torch  # noqa: PLC0415

            with torch.random.fork_rng(devices=[]):   # the user's random stream is untouched
                self.op_trace = trace_step(self.r.model, example_inputs, self.r.loss_fn,
                                           self.r.optimizer_factory,
                                           model_name=self.r.model_name)
            attach(self.op_trace)
        _say(self.config, f"record: CUPTI launch hook recording steps of {self.r.model_name} "
             "until two in a row launch the same kernels")
        self._open(mode="record")
        self._record_steps = 0

    def _end_record(self) -> None:
        if not self.session.cupti_active:
            # recording needs the launch hook; without it the buffer is empty and "empty" is
            # not the reason the user can act on
            from ..errors import TraceError  # noqa: PLC0415

            raise TraceError(
                "the CUPTI launch hook could not record the step "
                f"({self.session.cupti_error or 'not subscribed'})",
                "CUPTI has one subscriber slot per process and torch.profiler/Kineto keeps it "
                "once it ran: create the gearshift model before any profiler runs, or profile "
                "in another process")
        # A real step's launches settle only after the first steps (the optimizer creates its
        # state, cuBLAS picks its kernels): the sequence the runtime will count is the one two
        # consecutive steps agree on. Iterations are numbered from 1 in record mode.
        self._record_steps += 1
        last = self._record_steps
        if last < 2:
            return
        names = [[r.name for r in self.session.records(i)] for i in (last - 1, last)]
        if names[0] != names[1]:
            if last >= MAX_RECORD_STEPS:
                from ..errors import TraceError  # noqa: PLC0415

                raise TraceError(
                    f"the kernel launch sequence changed in each of {last} recorded steps "
                    f"({len(names[0])} then {len(names[1])} launches)",
                    "keep the step's shapes and code path fixed (pad variable-length batches, "
                    "no data-dependent branches), or plan from a saved trace")
            return
        trace = self.session.to_trace(last, model=self.r.model_name,
                                      device=self.device.facts.name)
        durations = getattr(self.device, "last_kernel_durations_s", None)
        if durations is not None and len(durations) == len(trace):
            from dataclasses import replace  # noqa: PLC0415

            trace.kernels = [replace(k, duration_s=float(d)) for k, d in zip(trace.kernels,
                                                                           durations)]
        self._close_session()
        self.trace = trace
        _say(self.config, f"record: {len(trace)} kernel launches, signature {trace.signature()}")
        path = self.config.schedule_path
        if path and Path(path).exists():
            schedule = Schedule.load(path)
            schedule.check_compatible(trace.signature(), self.device.facts.name)
            schedule.validate(path, self.device.facts.supported_freqs_mhz)
            self.r.loaded_from = str(path)
            self.r.schedule = schedule
            self._start_enforce()
            return
        from ..partition import partition  # noqa: PLC0415

        with Stage(f"partition: {len(trace)} kernels", self.config.progress):
            self.partitioning = partition(
                trace, switch_latency_s=self.device.capabilities.switch_latency_s)
        self._start_profile(list(range(len(self.partitioning))))

    # ------------------------------------------------------------------ profile
    def _start_profile(self, partitions: list[int]) -> None:
        from ..profile.online import OptionSearch, clock_options  # noqa: PLC0415
        from ..profile.options import candidate_freqs  # noqa: PLC0415

        self.phase = "profile"
        self.drifted = partitions
        freqs = candidate_freqs(self.device.facts, min_freq_mhz=self.config.min_freq_mhz,
                                step_mhz=self.config.freq_step_mhz or 90)
        self.freqs = sorted(freqs, reverse=True)
        options = [clock_options(self.freqs) for _ in self.partitioning.partitions]
        self.search = OptionSearch(options, self.reference, partitions,
                                   only_reference=self.predicted)
        self.overlap_note = self._overlap_note()
        self.r.options_total = self.search.options_total
        _say(self.config, f"profile: {len(partitions)} partitions x {len(freqs)} clocks "
             + ("(default clock measured, the others predicted: no permission to lock clocks)"
                if self.predicted else "(differential rounds: one partition's option against "
                "the reference per round, measured online)"))
        self._next_round()

    def _overlap_note(self) -> str:
        """Why the profiled options are clocks only (status()["overlap_profile_note"])."""
        from . import distributed  # noqa: PLC0415

        has_comm = any(k.kind == "comm" for k in self.trace.kernels)
        if not has_comm and not distributed.active():
            return ("clocks only: a single process whose step launches no collective has "
                    "nothing to overlap")
        if not has_comm:
            return "clocks only: the recorded step launches no collective to overlap"
        return ("clocks only: overlap options are not profiled online yet; the collectives "
                "keep the framework's own placement (serial)")

    @property
    def reference(self):
        """Every partition's reference option: the top clock, the framework's own overlap."""
        from ..model import NO_OVERLAP  # noqa: PLC0415

        return (int(self.device.facts.max_freq_mhz), NO_OVERLAP)

    def _probe(self, probe) -> Schedule:
        """A schedule that runs ``probe``: every partition at the reference option but one."""
        from ..model.schedule import ScheduleEntry  # noqa: PLC0415

        parts = self.partitioning
        choices = probe.choices(len(parts), self.reference)
        entries = [ScheduleEntry(p.index, p.start, int(c[0]), c[1], signature=p.signature,
                                 label=p.label) for p, c in zip(parts.partitions, choices)]
        return Schedule(entries, self.trace.signature(), self.device.facts.name,
                        parts.num_kernels, objective="profile")

    def _next_round(self) -> None:
        from ..profile.online import Round  # noqa: PLC0415

        probe = self.search.next_probe()
        if probe is None:
            self._close_session()
            self.round = None
            self.phase = "plan"
            return
        self.round = Round(probe, len(self.partitioning))
        self._open(self._probe(probe), trace=self.trace)

    def _profile_step(self, sample) -> None:
        if sample is not None and self.round is not None:
            self.round.add(sample)
        if self.round is None or not self.search.done(self.round):
            return
        m = self.search.record(self.round)
        self.r.options_measured = self.search.options_measured
        _say(self.config, f"profile: {self.round.probe.key} measured in {self.round.steps} "
             f"steps (step energy {m.step_energy_j * 1e3:.2f} mJ, error bound "
             f"{m.error * 100:.3f} %)")
        self._next_round()

    # ------------------------------------------------------------------ plan
    def _plan(self) -> None:
        from ..search.iteration import plan_iteration  # noqa: PLC0415

        predict = self._predictor() if self.predicted else None
        prof = self.search.profile(self.device.facts, self.partitioning.signature(), "measured",
                                   extra={"device": self.device.kind,
                                          "trace_signature": self.trace.signature()},
                                   predict=predict)
        if self.profile is not None and self.drifted:
            prof = _merge_profiles(self.profile, prof, self.drifted)
        self.profile = prof.validate()
        with Stage(f"plan: searching the time-energy frontier ({self.config.objective})",
                   self.config.progress):
            frontier, schedule = plan_iteration(prof, self.partitioning, self.trace.signature(),
                                                self.device.facts.name,
                                                objective=self.config.objective)
        schedule.extra.setdefault("model", self.trace.model)
        label = "predicted" if self.predicted else "planned from measured profile"
        schedule.extra["saving_label"] = label
        schedule.extra["steps_per_option"] = self.search.steps_per_option()
        self.r.frontier = frontier
        self.r.schedule = schedule
        self.r.explanation = (f"{label}: {(schedule.predicted.get('energy_saving') or 0) * 100:.1f}"
                              f" % energy at {((schedule.predicted.get('slowdown') or 1) - 1) * 100:+.1f}"
                              f" % time, from {self.search.options_measured} of "
                              f"{self.search.options_total} options measured online")
        if self.config.schedule_path and not self.predicted:
            schedule.save(self.config.schedule_path)
        saving = schedule.predicted.get("energy_saving")
        _say(self.config, f"plan: {len(schedule.entries)} partitions, energy saving "
             f"{(saving or 0) * 100:.1f} % ({label})")
        self._start_enforce()

    def _predictor(self):
        """The simulated GPU's response, fitted to what the default clock measured: each
        partition's time and energy scale with the simulated whole-step ratios to the top
        clock, anchored on the measurement."""
        from ..devices.sim import SimDevice  # noqa: PLC0415
        from ..partition import partition  # noqa: PLC0415
        from ..trace import trace_step  # noqa: PLC0415

        op = self.op_trace or trace_step(self.r.model, self.r.last_inputs, self.r.loss_fn,
                                         self.r.optimizer_factory, model_name=self.r.model_name)
        sim = SimDevice(_closest_preset(self.device.facts.name))
        whole = partition(op, min_partition_s=float("inf"))
        clocks = [f for f in self.freqs if f in set(sim.facts.supported_freqs_mhz)]
        times, energies = sim.profile_options(op, whole, [(f, "none") for f in clocks] +
                                              [(sim.facts.max_freq_mhz, "none")])
        ref_t, ref_e = times[-1].sum(), energies[-1].sum()
        table = {f: (times[i].sum() / ref_t, energies[i].sum() / ref_e)
                 for i, f in enumerate(clocks)}

        def predict(p, option):
            t0, e0 = self.search.partition_option(p, self.reference)
            near = min(table, key=lambda g: abs(g - option[0]))
            rt, re = table[near]
            return t0 * rt, e0 * re
        return predict

    # ------------------------------------------------------------------ enforce
    def _start_enforce(self) -> None:
        from .enforce import partitioning_of  # noqa: PLC0415

        schedule = self.r.schedule
        self.partitioning = self.partitioning or partitioning_of(schedule, self.trace)
        self.phase = "enforce"
        self._drift_count = {}
        self._open(schedule, trace=self.trace)
        _say(self.config, "enforce: clocks switched at partition boundaries by the runtime"
             + (" (dry-run: no clock is changed, switches are logged)" if self.predicted
                else ""))

    def _check_drift(self, sample) -> None:
        if sample is None or self.profile is None:
            self._enforce_prev = sample
            return
        prev, self._enforce_prev = self._enforce_prev, sample
        end = sample.end_s if sample.end_s is not None else None
        src = sample if end is not None else prev
        end = end if end is not None else (sample.boundary_s[0] if sample.boundary_s else None)
        if src is None or end is None or any(b is None for b in src.boundary_s):
            return
        times = np.diff(np.asarray(list(src.boundary_s) + [end], dtype=np.float64))
        if len(times) != len(self.r.schedule.entries):
            return
        by = {(e.partition, e.freq_mhz): e.time_s for e in self.profile.entries}
        top = self.device.facts.max_freq_mhz
        drifted = []
        for entry, t in zip(self.r.schedule.entries, times):
            f = entry.freq_mhz if not self.predicted else self.reference[0]
            want = by.get((entry.partition, f)) or by.get((entry.partition, top))
            if not want:
                continue
            if abs(t / want - 1) > DRIFT_TOLERANCE:
                self._drift_count[entry.partition] = self._drift_count.get(entry.partition, 0) + 1
            else:
                self._drift_count[entry.partition] = 0
            if self._drift_count[entry.partition] >= DRIFT_STEPS:
                drifted.append(entry.partition)
        if drifted:
            _say(self.config, f"enforce: partitions {drifted} drifted from their profile; "
                 "profiling them again")
            self.r.drift_events += 1
            self._close_session()
            self._start_profile(drifted)


def gpu_mode(choice) -> tuple[str, str]:
    """(mode, why) a training run gets on this machine, for ``gearshift info``: ``measured``
    (every option profiled with clocks locked), ``predicted`` (the default clock measured, the
    others predicted, enforcement dry-run) or ``simulated`` (no GPU: the simulated GPU)."""
    import os  # noqa: PLC0415

    kind = choice.kind
    if kind == "sim":
        return "simulated", "no GPU path: plans and figures come from the simulated GPU"
    if kind == "dry-run" or (kind == "fake-gpu" and
                             os.environ.get("GEARSHIFT_FAKE_GPU_LOCK", "1") == "0"):
        return "predicted", ("this process may not lock clocks (" + choice.why + "): each "
                             "partition is measured at the default clock, the other clocks are "
                             "predicted by the simulated GPU fitted to it, and the schedule is "
                             "enforced in dry-run (switches logged, never made)")
    return "measured", ("clocks can be locked (" + choice.why + "): every profiled option is "
                        "measured online in the training loop, then enforced")


def _merge_profiles(old, new, partitions: list[int]):
    """Keep ``old``'s entries except for ``partitions``, taken from ``new``."""
    from dataclasses import replace  # noqa: PLC0415

    keep = [e for e in old.entries if e.partition not in set(partitions)]
    fresh = [e for e in new.entries if e.partition in set(partitions)]
    return replace(old, entries=keep + fresh).validate()


def _closest_preset(name: str) -> str:
    n = name.lower()
    if "a100" in n:
        return "a100-sxm"
    if "a40" in n:
        return "a40"
    return "h100-sxm"
