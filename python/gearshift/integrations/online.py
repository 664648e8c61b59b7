"""The GPU path inside the training loop: record -> profile -> plan -> enforce (drift -> profile).

``OnlinePath.on_step()`` runs at the start of every training step (the wrapped model's forward).
It first closes the step before (on the fake GPU: plays it), then moves the phase machine:

- record: one step under a record-mode runtime session; the CUPTI launch hook records the real
  kernel sequence into a KernelTrace (its signature is what the runtime checks later);
- profile: partition that trace, then run rounds of steps: a reference round (every partition
  at the top clock, collectives serial), then one round per (partition, option) the search
  asks for, that partition at the option and the rest at the reference; partition energies
  come from whole-step energy differences, each round running until the energy counter's error
  bound allows <= 1 % per option (``gearshift.profile.online``, docs/online-profiling.md).
  An option is a clock and, on partitions that launch a collective, an overlap: the overlap
  pass (integrations/overlap_pass.py) places that round's collectives as the probe says, on
  the step split into the run's nanobatches (``nanobatches``: the saved schedule's, else the
  config's), so each round measures the program it names. Without permission to lock clocks,
  only the reference runs and the other clocks are predicted from the simulated GPU's response
  fitted to it (clocks only: an overlap's effect is not predicted);
- plan: search the frontier and select by the objective (one step runs untouched meanwhile);
  the schedule is saved to ``schedule_path``, so the next run goes from record to enforce;
- enforce: every step under the schedule (its clocks by the runtime, its overlap and
  nanobatches by the overlap pass; a step the pass cannot split into the schedule's nanobatches
  falls back, with the reason in status()); partitions whose measured time drifts from the
  profile by more than ``DRIFT_TOLERANCE`` for ``DRIFT_STEPS`` steps are profiled again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import TraceError
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
        self.overlap_profile: str | None = None
        self.nanobatches = self._run_nanobatches()
        from .lockstep import Lockstep  # noqa: PLC0415

        self.ranks = Lockstep()

    # ------------------------------------------------------------------ step boundary
    def _run_nanobatches(self) -> int:
        """The nanobatches every step of this run is split into: a saved schedule's (it is
        enforced as planned), else the config's."""
        path = self.config.schedule_path
        if path and Path(path).exists():
            try:
                return max(1, int(Schedule.load(path).nanobatches or 1))
            except Exception:  # noqa: BLE001 (the record step reports a bad file clearly)
                return self.config.nanobatches
        return self.config.nanobatches

    def overlap_target(self) -> tuple:
        """(schedule, trace, nanobatches) the overlap pass applies to this step: the running
        probe or schedule; none before one exists (every collective serial, the step split)."""
        sched = self.session_schedule
        if sched is None or self.trace is None:
            return None, None, self.nanobatches
        return sched, self.trace, self.nanobatches

    def _applied_overlaps(self, schedule):
        """Per partition of ``schedule``, the placement the last step's collectives really had:
        the schedule's, when the overlap pass placed that schedule's plan; else serial."""
        if schedule is None:
            return None
        from .overlap_pass import state_of  # noqa: PLC0415

        st = state_of(self.r)
        if not st.applied or st.schedule_applied is not schedule:
            return None
        from dataclasses import replace  # noqa: PLC0415

        out = []
        for e in schedule.entries:
            ov = e.overlap
            if ov.comm_sms and st.comm_sms_skipped_reason:   # the library picked the SMs
                ov = replace(ov, comm_sms=0)
            out.append(ov)
        return out

    def _check_split(self) -> None:
        """A run planned with k nanobatches runs with k, or not under gearshift at all."""
        if self.nanobatches <= 1 or self.r.fallback_reason is not None:
            return
        from .overlap_pass import state_of  # noqa: PLC0415

        st = state_of(self.r)
        if st.skipped_reason is not None:
            self.r.fallback(f"this run splits each step into {self.nanobatches} nanobatches "
                            "(the saved schedule's, else the config's), and the step could not "
                            f"be split: {st.skipped_reason}")

    def on_step(self, example_inputs) -> None:
        self._check_split()
        sample = None
        if self.r.fallback_reason is None:
            sample = self._finish_previous()
        # what this rank saw; every rank then acts on what all saw (integrations/lockstep.py)
        refused = self._refusal()
        more, drifted = False, []
        if self.r.fallback_reason is None and refused is None:
            if self.phase == "record" and self.session is not None:
                more = not self._record_settled()
            elif self.phase == "profile":
                more = self._observe_round(sample)
            elif self.phase == "enforce":
                drifted = self._observe_drift(sample)
        agreed = self.ranks.sync(self._num_partitions(), fallback=self.r.fallback_reason
                                 is not None, refused=refused is not None, more=more,
                                 drifted=drifted)
        if agreed.fallback_rank is not None:
            if self.r.fallback_reason is None:
                self.r.fallback(f"rank {agreed.fallback_rank} fell back, and the ranks' "
                                "in-loop phases run together")
            return
        if agreed.refused_rank is not None:
            self._go_predicted(refused or f"rank {agreed.refused_rank}'s GPU refused a clock "
                               "lock, and the ranks profile together")
        elif self.phase == "record":
            if self.session is None:
                self._start_record(example_inputs)
            elif not agreed.more:
                self._end_record()
        elif self.phase == "profile":
            if not agreed.more:
                self._end_round()
        elif self.phase == "plan":
            self._plan()
        elif self.phase == "enforce" and agreed.drifted:
            _say(self.config, f"enforce: partitions {agreed.drifted} drifted from their "
                 "profile; profiling them again")
            self.r.drift_events += 1
            self._close_session()
            self._start_profile(agreed.drifted)
        if self.session is not None:
            self.session.step()

    def _num_partitions(self) -> int:
        return len(self.partitioning) if self.partitioning is not None else 0

    def _finish_previous(self):
        if self.session is None:
            return None
        sched = self.session_schedule
        return self.device.play_step(self.session, sched, self._applied_overlaps(sched))

    def _refusal(self) -> str | None:
        """Why the GPU refused a clock lock in the last step (NVML_ERROR_NO_PERMISSION after
        all, another holder), or None."""
        s = self.session
        if self.predicted or s is None or not s.clock_refusals:
            return None
        return s.clock_refusal_reason or "no reason given"

    def _go_predicted(self, reason: str) -> None:
        """Say so once, and go on as a machine without permission does: the default clock
        measured, the others predicted, the schedule enforced in dry-run."""
        import warnings  # noqa: PLC0415

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
                                           model_name=self.r.model_name,
                                           nanobatches=self.nanobatches)
            attach(self.op_trace)
        _say(self.config, f"record: CUPTI launch hook recording steps of {self.r.model_name} "
             "until two in a row launch the same kernels")
        self._open(mode="record")
        self._record_steps = 0

    def _record_settled(self) -> bool:
        """Whether the steps recorded so far end with two that launch the same kernels."""
        if not self.session.cupti_active:
            # recording needs the launch hook; without it the buffer is empty and "empty" is
            # not the reason the user can act on
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
            return False
        names = [[r.name for r in self.session.records(i)] for i in (last - 1, last)]
        if names[0] != names[1]:
            if last >= MAX_RECORD_STEPS:
                raise TraceError(
                    f"the kernel launch sequence changed in each of {last} recorded steps "
                    f"({len(names[0])} then {len(names[1])} launches)",
                    "keep the step's shapes and code path fixed (pad variable-length batches, "
                    "no data-dependent branches), or plan from a saved trace")
            return False
        return True

    def _end_record(self) -> None:
        """Every rank's recorded steps settled: the last one is the trace."""
        last = self._record_steps
        trace = self.session.to_trace(last, model=self.r.model_name,
                                      device=self.device.facts.name)
        durations = getattr(self.device, "last_kernel_durations_s", None)
        if durations is not None and len(durations) == len(trace):
            from dataclasses import replace  # noqa: PLC0415

            trace.kernels = [replace(k, duration_s=float(d)) for k, d in zip(trace.kernels,
                                                                           durations)]
        self._close_session()
        self.trace = self._tag_nanobatches(trace)
        _say(self.config, f"record: {len(trace)} kernel launches, signature {trace.signature()}")
        sigs = self.ranks.gather(trace.signature())
        if len(set(sigs)) > 1:
            from ..errors import ConfigError  # noqa: PLC0415

            raise ConfigError(f"the ranks launch {len(set(sigs))} different steps (signatures "
                              f"{sorted(set(sigs))}); the in-loop path profiles ranks that run "
                              "one step together",
                              "plan each rank role on the simulated GPU (device='sim') and "
                              "enforce the saved schedules")
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

    def _tag_nanobatches(self, trace):
        """The recorded trace with each collective's nanobatch (the overlap pass maps a
        schedule's partitions onto the k-th collective of each nanobatch). The launch hook sees
        names only: the tags come from the step the GPU ran (the fake GPU plays the op-level
        trace, split), else from the order in which the pass launched the serial step's
        collectives."""
        k = self.nanobatches
        if k <= 1:
            return trace
        from dataclasses import replace  # noqa: PLC0415

        op = self.op_trace
        if op is not None and len(op) == len(trace):
            tags = [int(x.nanobatch) for x in op.kernels]
        else:
            placements = getattr(self.r, "_overlap_placements", None)
            order = placements.serial_launch_nanobatches() if placements is not None else None
            comm = [i for i, x in enumerate(trace.kernels) if x.kind == "comm"]
            if order is None or len(order) != len(comm):
                raise TraceError(f"the recorded step's {len(comm)} collectives cannot be matched "
                                 f"to the {k} nanobatches the overlap pass split it into",
                                 "set nanobatches=1, or report this with the model")
            tags = [0] * len(trace)
            for i, nb in zip(comm, order):
                tags[i] = int(nb)
        trace.kernels = [replace(x, nanobatch=t) for x, t in zip(trace.kernels, tags)]
        trace.meta["nanobatches"] = k
        return trace

    # ------------------------------------------------------------------ profile
    def _start_profile(self, partitions: list[int]) -> None:
        from ..profile.online import OptionSearch, clock_options  # noqa: PLC0415
        from ..profile.options import candidate_freqs  # noqa: PLC0415

        self.phase = "profile"
        self.drifted = partitions
        freqs = candidate_freqs(self.device.facts, min_freq_mhz=self.config.min_freq_mhz,
                                step_mhz=self.config.freq_step_mhz or 90)
        self.freqs = sorted(freqs, reverse=True)
        overlaps, self.overlap_profile = self._overlap_options()
        with_comm = self._partitions_with_comm()
        options = [clock_options(self.freqs, overlaps if p in with_comm and overlaps else None)
                   for p in range(len(self.partitioning))]
        durations = [k.duration_s for k in self.trace.kernels]
        self.search = OptionSearch(options, self.reference, partitions,
                                   only_reference=self.predicted,
                                   latency_s=self._switch_latency_s(),
                                   starts=[p.start for p in self.partitioning.partitions],
                                   kernel_s=durations if any(durations) else None,
                                   num_kernels=len(self.trace))
        self.r.options_total = self.search.options_total
        _say(self.config, f"profile: {len(partitions)} partitions x {len(freqs)} clocks"
             + (f" (x {len(overlaps)} overlaps on the {len(with_comm)} with collectives)"
                if overlaps and with_comm else "") + " "
             + ("(default clock measured, the others predicted: no permission to lock clocks)"
                if self.predicted else "(differential rounds: one partition's option against "
                "the reference per round, measured online)"))
        self._next_round()

    def _partitions_with_comm(self) -> set[int]:
        kinds = [k.kind for k in self.trace.kernels]
        return {p.index for p in self.partitioning.partitions
                if "comm" in kinds[p.start:p.end]}

    def _overlap_options(self) -> tuple[list, str]:
        """(overlap choices profiled on partitions with collectives, status line saying which
        and why). The reference (the framework's serial placement) is always among them; the
        others are ``config.overlaps`` (default ``profile.options.DEFAULT_OVERLAPS``) as far as
        the program can apply them here."""
        from ..model import NO_OVERLAP  # noqa: PLC0415
        from ..profile.options import parse_overlaps  # noqa: PLC0415
        from . import distributed  # noqa: PLC0415

        has_comm = any(k.kind == "comm" for k in self.trace.kernels)
        if not has_comm:
            return [], ("clocks only: " + ("a single process whose step launches no collective "
                                           "has nothing to overlap" if not distributed.active()
                                           else "the recorded step launches no collective to "
                                           "overlap"))
        if self.predicted:
            return [], ("clocks only: without permission to lock clocks the other options are "
                        "predicted, and an overlap's effect is not predicted")
        nccl = distributed.active() and _backend_is_nccl()
        chosen, dropped = [NO_OVERLAP], []
        for ov in parse_overlaps(self.config.overlaps):
            if ov.mode == "serial" and not ov.comm_sms:
                continue                      # the reference: the framework's own placement
            if ov.block_size or (ov.comm_sms and not nccl):
                dropped.append(ov.key())      # the program cannot apply it on this backend
                continue
            if ov.overlapped and self.nanobatches < 2:
                dropped.append(ov.key())      # nothing independent to run beside a collective
                continue
            if ov not in chosen:
                chosen.append(ov)
        line = (f"clocks x overlaps {[o.key() for o in chosen]} on partitions with collectives, "
                f"{self.nanobatches} nanobatch(es) per step")
        if dropped:
            line += (f"; not profiled: {dropped} (windows need nanobatches >= 2; SM counts need "
                     "NCCL; block sizes are not applied at run time)")
        return chosen, line

    @property
    def reference(self):
        """Every partition's reference option: the top clock, the framework's own overlap."""
        from ..model import NO_OVERLAP  # noqa: PLC0415

        return (int(self.device.facts.max_freq_mhz), NO_OVERLAP)

    def _switch_latency_s(self) -> float:
        """The clock switch latency profiling rounds wait out: the device's (the fake NVML's
        preset), else the declared default (a real GPU's driver does not report it)."""
        from ..partition import DEFAULT_SWITCH_LATENCY_S  # noqa: PLC0415

        lat = getattr(self.device.capabilities, "switch_latency_s", None)
        return float(DEFAULT_SWITCH_LATENCY_S if lat is None else lat)

    def _probe(self, layout) -> Schedule:
        """A schedule that runs a probe: every partition at the reference option but one,
        whose option is requested ahead of its boundaries (``profile.online.probe_layout``)."""
        from ..model import Partitioning  # noqa: PLC0415
        from ..model.schedule import ScheduleEntry  # noqa: PLC0415

        sub = Partitioning.from_cuts(self.trace, list(layout.cuts))
        names = self.partitioning.partitions
        entries = [ScheduleEntry(i, q.start, int(c[0]), c[1], signature=q.signature,
                                 label=names[o].label)
                   for i, (q, c, o) in enumerate(zip(sub.partitions, layout.clocks,
                                                     layout.owner))]
        return Schedule(entries, self.trace.signature(), self.device.facts.name,
                        sub.num_kernels, objective="profile", nanobatches=self.nanobatches)

    def _next_round(self) -> None:
        probe = self.ranks.lead_call(self.search.next_probe)   # rank 0 asks for every rank
        if probe is None:
            self._close_session()
            self.round = None
            self.phase = "plan"
            return
        self.round = self.search.new_round(probe)
        self._open(self._probe(self.round.layout), trace=self.trace)

    def _observe_round(self, sample) -> bool:
        """Add the last step to the round; whether the round needs more steps."""
        if sample is not None and self.round is not None:
            self.round.add(sample)
            if self.round.settled_steps == 1 and self.round.relayout() is not None:
                # p's time at the option moved its lead-out kernel: restart on the new layout
                self._open(self._probe(self.round.layout), trace=self.trace)
        return self.round is not None and not self.search.done(self.round)

    def _end_round(self) -> None:
        if self.round is None:
            return
        m = self.search.record(self.round)
        self.r.options_measured = self.search.options_measured
        pr = self.round.probe
        bound = m.error if pr.partition is None else self.search.option_error(pr.partition,
                                                                              pr.option)
        _say(self.config, f"profile: {pr.key} measured in {m.steps} steps (step energy "
             f"{m.step_energy_j * 1e3:.2f} mJ, energy error bound {bound * 100:.3f} %)")
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
        planned = {}

        def search():
            with Stage(f"plan: searching the time-energy frontier ({self.config.objective})",
                       self.config.progress):
                planned["frontier"], planned["schedule"] = plan_iteration(
                    prof, self.partitioning, self.trace.signature(), self.device.facts.name,
                    objective=self.config.objective, nanobatches=self.nanobatches)
            return planned["schedule"].to_json()

        # in a distributed job every rank runs rank 0's schedule: its collectives' placement
        # must be the same on all (each rank keeps its own profile, for drift)
        sent = self.ranks.lead_call(search)
        frontier = planned.get("frontier")
        schedule = planned.get("schedule") or Schedule.from_json(sent)
        if "schedule" not in planned:
            schedule.extra["planned_on_rank"] = 0
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
        if self.config.schedule_path and not self.predicted and self.ranks.rank == 0:
            schedule.save(self.config.schedule_path)
        saving = schedule.predicted.get("energy_saving")
        _say(self.config, f"plan: {len(schedule.entries)} partitions, energy saving "
             f"{(saving or 0) * 100:.1f} % ({label})")
        self._start_enforce()

    def _predictor(self):
        """The simulated GPU's response, fitted per partition to what the default clock
        measured (``profile.predicted``); it also sets the reference step's energy split."""
        from ..devices.sim import SimDevice  # noqa: PLC0415
        from ..profile.predicted import fit_predictor, op_cuts  # noqa: PLC0415
        from ..trace import trace_step  # noqa: PLC0415

        op = self.op_trace or trace_step(self.r.model, self.r.last_inputs, self.r.loss_fn,
                                         self.r.optimizer_factory, model_name=self.r.model_name)
        sim = SimDevice(_closest_preset(self.device.facts.name))
        ref = self.search.ref
        starts = [p.start for p in self.partitioning.partitions]
        cuts = op_cuts(op, starts, len(self.trace), ref.times_s, sim)
        predict = fit_predictor(sim, op, cuts, self.freqs, self.reference[0], ref.times_s,
                                ref.step_energy_j)
        self.search.split = predict.split
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

    def _observe_drift(self, sample) -> list[int]:
        """Partitions whose time has been off their profile for ``DRIFT_STEPS`` steps."""
        if sample is None or self.profile is None:
            self._enforce_prev = sample
            return []
        prev, self._enforce_prev = self._enforce_prev, sample
        end = sample.end_s if sample.end_s is not None else None
        src = sample if end is not None else prev
        end = end if end is not None else (sample.boundary_s[0] if sample.boundary_s else None)
        if src is None or end is None or any(b is None for b in src.boundary_s):
            return []
        times = np.diff(np.asarray(list(src.boundary_s) + [end], dtype=np.float64))
        if len(times) != len(self.r.schedule.entries):
            return []
        by = {(e.partition, e.freq_mhz, e.overlap): e.time_s for e in self.profile.entries}
        top, ref_ov = self.reference
        drifted = []
        applied = self._applied_overlaps(self.session_schedule if sample is not None else None)
        for i, (entry, t) in enumerate(zip(self.r.schedule.entries, times)):
            f = entry.freq_mhz if not self.predicted else top
            ov = applied[i] if applied else ref_ov
            want = by.get((entry.partition, f, ov)) or by.get((entry.partition, top, ref_ov))
            if not want:
                continue
            if abs(t / want - 1) > DRIFT_TOLERANCE:
                self._drift_count[entry.partition] = self._drift_count.get(entry.partition, 0) + 1
            else:
                self._drift_count[entry.partition] = 0
            if self._drift_count[entry.partition] >= DRIFT_STEPS:
                drifted.append(entry.partition)
        return drifted


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


def _backend_is_nccl() -> bool:
    import torch.distributed as dist  # noqa: PLC0415

    return "nccl" in str(dist.get_backend()).lower()
