"""The gearshift side of a wrapped model (``model.gearshift``): device, plan, schedule, enforcer.

Its phases (``status()["phase"]``): record -> profile -> plan -> enforce, or fallback. On the
simulated GPU the first training step traces, profiles and plans at once (the simulator needs
no steps), so every step is an enforce step. On a device whose profile needs the training step
(fake-gpu, nvml, dry-run, daemon) the phases run inside the training loop
(``integrations.online``). Whatever fails inside gearshift makes the runner fall back: that
step and every later one run untouched, with one warning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..devices import open_device
from ..errors import ConfigError
from ..model import Schedule
from .config import GearshiftConfig
from .enforce import Enforcer, partitioning_of
from ..plan import Plan, plan_for


PHASES = ("record", "profile", "plan", "enforce", "fallback")


class Runner:
    """The gearshift side of a wrapped model: its device, plan, schedule and enforcer.

    The first training-mode forward call traces the step (shapes only, on meta), then loads the
    saved schedule (checked against this model and device) or plans one; every training-mode
    forward call after that starts one iteration under the schedule.
    """

    def __init__(self, model: torch.nn.Module, config: GearshiftConfig, loss_fn=None,
                 optimizer_factory=None, model_name: str = ""):
        self.model = model
        self.config = config
        self.loss_fn = loss_fn
        self.optimizer_factory = optimizer_factory
        self.model_name = model_name or getattr(type(model), "_gearshift_base",
                                                type(model)).__name__
        self.plan: Plan | None = None
        self.schedule: Schedule | None = None
        self.enforcer: Enforcer | None = None
        self.loaded_from: str | None = None
        self.fallback_reason: str | None = None
        self.explanation: str = "no schedule yet: it is made on the first training step"
        self.frontier_summary: str | None = None
        self.data_parallel = None           # the DistributedDataParallel around the model
        self.role: int = 0                  # which distinct rank role's schedule this rank runs
        self.count_on_optimizer = False     # iterations = optimizer steps (grad accumulation)
        self.micro_steps = 0                # forward calls since the last counted iteration
        self.traced_shapes = None           # input shapes of the traced step
        self.steps_unlike_trace = 0         # steps whose batch had other shapes
        self.steps_by_phase = dict.fromkeys(PHASES, 0)
        self.options_measured = 0           # (partition, option) pairs profiled
        self.options_total = 0
        self.drift_events = 0
        self.frontier = None
        self.last_inputs = None
        self.online = None                  # the in-loop phases on a device with a runtime
        self.device = None
        try:
            self.device = open_device(config.device, preset=config.sim_preset)
        except Exception as exc:  # noqa: BLE001 (never break training: fall back)
            # in a distributed job the other ranks wait for this one at the first step
            self._tell_ranks = True
            self._fail("opening the device", exc)
            return
        from ..monitor import set_current_device  # noqa: PLC0415

        set_current_device(self.device)
        if self.device.capabilities.needs_step and hasattr(self.device, "play_step"):
            from .online import OnlinePath  # noqa: PLC0415

            self.online = OnlinePath(self)

    @property
    def ready(self) -> bool:
        if self.online is not None:
            return self.online.phase == "enforce"
        return self.enforcer is not None

    def prepare(self, example_inputs) -> Schedule:
        """Trace, then load or plan the schedule; idempotent. On a device whose profile needs
        training steps, the phases run in the loop: this only remembers the inputs."""
        if self.ready:
            return self.schedule
        self.last_inputs = example_inputs
        if self.online is not None:
            return self.schedule
        from ..profile.progress import Stage  # noqa: PLC0415
        from ..trace import trace_step  # noqa: PLC0415

        from . import distributed  # noqa: PLC0415

        self._stage = "tracing the training step"
        dp = distributed.data_parallel_spec(self)
        try:
            with Stage(f"tracing one training step of {self.model_name}{_who()}",
                       self.config.progress):
                with torch.random.fork_rng(devices=[]):   # the user's random stream stays
                    trace = trace_step(self.model, example_inputs, self.loss_fn,
                                       self.optimizer_factory, device=self.config.trace_device,
                                       model_name=self.model_name, data_parallel=dp,
                                       nanobatches=self.config.nanobatches)
        except Exception as exc:
            if distributed.active():   # the other ranks wait in agree(): tell them
                distributed.agree(self, None, exc)
            raise
        self._stage = "planning"
        if distributed.active():
            # one plan per distinct rank role, made by that role's first rank, shared by all
            self.schedule, self.explanation, self.frontier_summary, self.role = \
                distributed.agree(self, trace)
            self.enforcer = Enforcer(self.device, trace, self.schedule)
            return self.schedule
        return self._prepare_local(trace)

    def _prepare_local(self, trace, path=None):
        path = path or self.config.schedule_path
        baseline = None
        if path and Path(path).exists():
            self._stage = f"loading the saved schedule {path}"
            schedule = Schedule.load(path)
            schedule.check_compatible(trace.signature(), self.device.facts.name)
            schedule.validate(path, self.device.facts.supported_freqs_mhz)
            partitioning = partitioning_of(schedule, trace)
            self.loaded_from = str(path)
        elif not self.device.capabilities.simulated:
            # profiling a real GPU means driving the user's loop clock by clock with boundary
            # timing from the runtime; until that is wired in, plan where it is cheap and safe
            raise ConfigError(
                f"gearshift.compile has no saved schedule to enforce on {self.device.name}, and "
                "planning on a real GPU inside the training loop is not supported yet",
                f"plan on the simulated GPU of this model (device='sim', sim_preset='h100-sxm' "
                f"or 'a100-sxm') with schedule_path={path or 'sched.json'!r}, then run again with "
                "the same schedule_path on the GPU; or measure a profile with "
                "gearshift.profile_partitions(..., step=..., partition_marks=...) and plan it")
        else:
            self.plan = plan_for(trace, self.device, self.config)
            schedule, partitioning = self.plan.schedule, self.plan.partitioning
            self.frontier = self.plan.frontier
            prof = getattr(self.plan, "profile", None)
            self.options_total = self.options_measured = len(getattr(prof, "entries", ()))
            baseline = self.plan.frontier.baseline.choices if self.plan.frontier.baseline else None
            if path:
                schedule.save(path)
            self._explain()
        self.schedule = schedule
        if self.loaded_from:
            p = schedule.predicted
            self.explanation = (f"schedule loaded from {path}: predicted "
                                f"{100 * (p.get('energy_saving') or 0):.1f} % energy saving at "
                                f"{100 * ((p.get('slowdown') or 1) - 1):+.1f} % time "
                                f"({p.get('source', '?')}, {p.get('energy_scope', '?')} energy)")
        self.enforcer = Enforcer(self.device, trace, schedule, partitioning, baseline)
        return schedule

    def _explain(self) -> None:
        from .explain import explain_plan, frontier_summary  # noqa: PLC0415
        caps = getattr(self.device, "capabilities", None)
        self.explanation = explain_plan(self.plan, self.config.objective,
                                        getattr(caps, "switch_latency_s", None))
        self.frontier_summary = frontier_summary(self.plan.frontier)
        if self.config.progress:
            import sys  # noqa: PLC0415

            print(f"gearshift{_who()}: {self.model_name}: {self.explanation}\n"
                  f"gearshift{_who()}: {self.frontier_summary}", file=sys.stderr)

    def on_step(self, example_inputs) -> None:
        self.last_inputs = example_inputs
        if self.online is not None:
            self.online.on_step(example_inputs)
            return
        if not self.ready:
            self.prepare(example_inputs)
        self.enforcer.step()
        if self.enforcer.clock_refusals:
            # the clocks are not ours (another job holds them, no permission): fall back rather
            # than report a schedule as enforced
            self.fallback("the clock backend refused a clock request ("
                          f"{self.enforcer.clock_refusal_reason or 'no reason given'})")

    @property
    def clock_refusals(self) -> int:
        """Clock requests refused so far (status()["clock_refusals"])."""
        return self.enforcer.clock_refusals if self.enforcer is not None else 0

    # ---- never break training ------------------------------------------------------------
    @property
    def phase(self) -> str:
        if self.fallback_reason is not None:
            return "fallback"
        if self.online is not None:
            return self.online.phase
        return "enforce" if self.ready else "record"

    def fallback(self, reason: str) -> None:
        """From now on every step runs untouched (clocks at their defaults); warn once."""
        if self.fallback_reason is not None:
            return
        self.fallback_reason = reason
        self.explanation = f"no saving: gearshift fell back ({reason})"
        import warnings  # noqa: PLC0415

        warnings.warn(f"gearshift{_who()}: {reason}; training continues without gearshift "
                      "(clocks at their defaults)", RuntimeWarning, stacklevel=4)
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 (closing a broken enforcer must not raise)
            pass

    def _fail(self, what: str, exc: BaseException) -> None:
        if self.config.strict:
            raise exc
        import logging  # noqa: PLC0415

        logging.getLogger("gearshift").debug("%s failed", what, exc_info=exc)

        from ..errors import GearshiftError  # noqa: PLC0415

        if isinstance(exc, GearshiftError):
            text = exc.problem + (f" (fix: {exc.fix})" if exc.fix else "")
        else:
            text = f"{type(exc).__name__}: {exc}".splitlines()[0] + \
                " (fix: please report this as a gearshift bug, with the model)"
        self.fallback(f"{what} failed: {text}")

    def guarded_prepare(self, example_inputs) -> None:
        if self.fallback_reason is None:
            try:
                self.prepare(example_inputs)
            except Exception as exc:  # noqa: BLE001
                self._fail(getattr(self, "_stage", "preparing"), exc)

    def guarded_step(self, example_inputs) -> None:
        """What a wrapper calls at each training forward: one iteration, or nothing."""
        if self.fallback_reason is not None:
            self.steps_by_phase["fallback"] += 1
            if self.__dict__.pop("_tell_ranks", False):
                self._tell_other_ranks()
            if self.online is not None:          # the other ranks learn it at this step
                self.online.ranks.begin()
                self.online.ranks.end(self.online._num_partitions(), True)
            return
        self.micro_steps += 1
        if self.enforcer is None and not self.count_on_optimizer and (
                self.online is None or self.micro_steps == 1):
            # an optimizer over the model already exists: count its steps from the first one
            # (the in-loop path looks once: its steps before enforce are many, and a gc scan
            # per step would cost more than the step)
            self.count_on_optimizer = _optimizer_exists(self.model)
        if self.count_on_optimizer and self.ready and self.micro_steps > 1:
            return                        # a further micro-step of the same optimizer step
        shapes = _shapes(example_inputs)
        if self.traced_shapes is None:
            self.traced_shapes = shapes
        elif shapes and shapes != self.traced_shapes:
            # the simulated figures price the traced step; say so rather than pass it off
            self.steps_unlike_trace += 1
        if self.online is not None:
            self.online.ranks.begin()
        try:
            self.on_step(example_inputs)
        except Exception as exc:  # noqa: BLE001
            what = (f"the gearshift {self.online.phase} phase" if self.online is not None else
                    getattr(self, "_stage", "preparing") if not self.ready
                    else "the gearshift step")
            self._fail(what, exc)
        if self.online is not None:
            try:   # a rank that failed before this step's agreement takes part now
                self.online.ranks.end(self.online._num_partitions(),
                                      self.fallback_reason is not None)
            except Exception as exc:  # noqa: BLE001 (the process group itself failed)
                self._fail("the ranks' agreement", exc)
        self.steps_by_phase[self.phase] += 1

    def _tell_other_ranks(self) -> None:
        """This rank fell back before planning: take part in the ranks' agreement as a failed
        rank, so that the others fall back too instead of waiting for it."""
        from . import distributed  # noqa: PLC0415

        if distributed.active():
            try:
                distributed.agree(self, None, RuntimeError(self.fallback_reason))
            except Exception:  # noqa: BLE001, S110 (it reports this rank's own failure)
                pass

    def on_optimizer_step(self) -> None:
        """An optimizer step over this model's parameters ended: the next forward starts a new
        iteration (gradient accumulation: micro-steps before it are one iteration)."""
        self.count_on_optimizer = True
        self.micro_steps = 0

    def status(self) -> dict:
        s = {"phase": self.phase, "fallback_reason": self.fallback_reason,
             "explanation": self.explanation,
             "iterations": self.enforcer.iterations if self.enforcer else 0,
             "iterations_count": "optimizer steps" if self.count_on_optimizer else
             "training forward calls", "role": self.role}
        if self.steps_unlike_trace:
            s["steps_unlike_traced_batch"] = self.steps_unlike_trace
            s["explanation"] += (f"; {self.steps_unlike_trace} steps ran batches shaped unlike "
                                 f"the traced one {self.traced_shapes}: simulated figures price "
                                 "the traced batch")
        s["planned_energy_saving_pct"] = None
        s["saving_label"] = None
        if self.schedule is not None:
            s["planned_energy_saving_pct"] = 100 * (self.schedule.predicted.get(
                "energy_saving") or 0.0)
            s["saving_label"] = self.schedule.extra.get("saving_label") or (
                "simulated" if self.device is not None and self.device.capabilities.simulated
                else "planned")
        online = self.online
        search = online.search if online is not None else None
        s.update({
            "steps_by_phase": dict(self.steps_by_phase),
            "options_measured": search.options_measured if search else self.options_measured,
            "options_total": search.options_total if search else self.options_total,
            "mode": ("predicted" if online and online.predicted else
                     "measured" if online else "simulated"),
            "steps_per_option": search.steps_per_option() if search else {},
            # each option's energy error bound (%) and a summary line, on every device
            "energy_error_bound_pct": search.error_bounds_pct() if search else {},
            "profile_accounting": search.accounting() if search else (
                "simulated: the simulated GPU prices every option exactly; no training step "
                "is measured, so there is no counter error" if self.device is not None and
                self.device.capabilities.simulated else "profiling: nothing measured yet"),
            "drift_events": self.drift_events,
            # which overlap options the in-loop profile measures, and why not others (None: the
            # simulated profile, whose options are the config's)
            "overlap_profile": online.overlap_profile if online else None,
            "device": getattr(self.device, "name", ""),
        })
        if self.frontier_summary:
            s["frontier"] = self.frontier_summary
        from . import overlap_pass  # noqa: PLC0415  (the overlap half's keys)

        s.update(overlap_pass.state_of(self).status())
        s["clock_refusals"] = self.clock_refusals
        return s

    def savings(self) -> dict:
        """Predicted figures of the schedule against the all-max baseline."""
        if self.schedule is None:
            raise ConfigError(f"no schedule yet ({self.explanation})",
                              "run one training step (or call prepare) first")
        p = self.schedule.predicted
        return {k: p.get(k) for k in ("time_s", "energy_j", "baseline_time_s",
                                      "baseline_energy_j", "energy_saving", "slowdown",
                                      "energy_scope", "source")} | {
            "explanation": self.explanation, "frontier": self.frontier_summary}

    def close(self) -> None:
        if self.online is not None:
            self.online.close()
        if self.enforcer is not None:
            self.enforcer.close()


def _optimizer_exists(model) -> bool:
    """Whether some torch optimizer holds this model's parameters (found once, at the first
    step, so that gradient accumulation counts optimizer steps from the first iteration)."""
    import gc  # noqa: PLC0415

    first = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    if first is None:
        return False
    for o in gc.get_objects():
        # type(), not isinstance(): a dead weak proxy among the objects raises on the latter
        if issubclass(type(o), torch.optim.Optimizer) and any(
                p is first for g in o.param_groups for p in g["params"]):
            return True
    return False


def _shapes(inputs) -> tuple:
    from torch.utils._pytree import tree_leaves  # noqa: PLC0415

    return tuple(tuple(t.shape) for t in tree_leaves(inputs) if isinstance(t, torch.Tensor))


def _who() -> str:
    from .distributed import who  # noqa: PLC0415

    w = who()
    return f"[{w}]" if w else ""
