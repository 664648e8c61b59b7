"""The gearshift side of a wrapped model (``model.gearshift``): device, plan, schedule, enforcer.

Its phase machine (``status()["phase"]``): record -> profile -> plan -> enforce, or fallback.
On the simulated GPU the first training step traces, profiles and plans at once (the
simulator needs no steps), so every step is an enforce step. On a device with a runtime
(fake-gpu, nvml, dry-run, daemon) the phases run inside the training loop
(``integrations.online``). Whatever fails inside gearshift during a step makes the runner fall
back: that step and every later one run untouched, with one warning.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from ..errors import ConfigError
from ..model import Schedule
from .config import GearshiftConfig
from .device import resolve_device
from .enforce import Enforcer, partitioning_of
from ..plan import Plan, plan_for

log = logging.getLogger("gearshift")

PHASES = ("record", "profile", "plan", "enforce", "fallback")
# devices whose phases run inside the training loop through the runtime
ONLINE_KINDS = ("fake-gpu", "nvml", "dry-run")


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
        self.model_name = model_name or type(model).__name__
        self.device = resolve_device(config.device, config.sim_preset)
        from ..monitor import set_current_device  # noqa: PLC0415

        set_current_device(self.device)
        self.plan: Plan | None = None
        self.schedule: Schedule | None = None
        self.enforcer: Enforcer | None = None
        self.loaded_from: str | None = None
        self.frontier = None
        self.phase = "record"
        self.steps_by_phase = dict.fromkeys(PHASES, 0)
        self.options_measured = 0
        self.options_total = 0
        self.fallback_reason: str | None = None
        self.drift_events = 0
        self.last_inputs = None
        kind = getattr(self.device, "kind", "sim")
        self.online = None
        if kind in ONLINE_KINDS or str(kind).startswith("daemon:"):
            from .online import OnlinePath  # noqa: PLC0415

            self.online = OnlinePath(self)

    @property
    def ready(self) -> bool:
        if self.online is not None:
            return self.online.phase == "enforce"
        return self.enforcer is not None

    def prepare(self, example_inputs) -> Schedule:
        """Trace, then load or plan the schedule; idempotent. On a device with a runtime the
        phases need training steps: this only remembers the inputs."""
        if self.ready:
            return self.schedule
        self.last_inputs = example_inputs
        if self.online is not None:
            return self.schedule
        from ..profile.progress import Stage  # noqa: PLC0415
        from ..trace import trace_step  # noqa: PLC0415

        with Stage(f"tracing one training step of {self.model_name}", self.config.progress):
            with torch.random.fork_rng(devices=[]):   # the user's random stream is untouched
                trace = trace_step(self.model, example_inputs, self.loss_fn,
                                   self.optimizer_factory, model_name=self.model_name)
        path = self.config.schedule_path
        baseline = None
        if path and Path(path).exists():
            schedule = Schedule.load(path)
            schedule.check_compatible(trace.signature(), self.device.facts.name)
            schedule.validate(path, self.device.facts.supported_freqs_mhz)
            partitioning = partitioning_of(schedule, trace)
            self.loaded_from = str(path)
        elif not hasattr(self.device, "profile_options"):
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
            baseline = self.plan.frontier.baseline.choices if self.plan.frontier.baseline else None
            if path:
                schedule.save(path)
        self.schedule = schedule
        self.enforcer = Enforcer(self.device, trace, schedule, partitioning, baseline)
        return schedule

    def on_step(self, example_inputs) -> None:
        """A training step begins. Never raises: a failure inside gearshift falls back."""
        if self.phase != "fallback":
            try:
                self._advance(example_inputs)
            except Exception as exc:  # noqa: BLE001 - the user's step must still run
                log.debug("gearshift step failed", exc_info=True)
                self.fallback(f"{type(exc).__name__}: {exc}")
        self.steps_by_phase[self.phase] += 1

    def _advance(self, example_inputs) -> None:
        self.last_inputs = example_inputs
        if self.online is not None:
            self.online.on_step(example_inputs)
            self.phase = self.online.phase
            return
        if not self.ready:
            self.prepare(example_inputs)
            self.options_total = self.options_measured = len(self.plan.profile.entries) if (
                self.plan is not None) else 0
        self.phase = "enforce"
        self.enforcer.step()

    def fallback(self, reason: str) -> None:
        """Every later step runs untouched (clocks back at their defaults), one warning."""
        if self.phase == "fallback":
            return
        self.phase = "fallback"
        self.fallback_reason = str(reason)
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing is best effort once something broke
            log.debug("closing after a fallback failed", exc_info=True)
        warnings.warn(f"gearshift: falling back to plain training ({reason}); every later step "
                      "runs untouched with the GPU's default clocks", RuntimeWarning, stacklevel=3)

    def status(self) -> dict:
        """Where this model is: the same keys on every device (sim, fake-gpu, nvml, dry-run)."""
        saving = None
        label = None
        if self.schedule is not None and self.schedule.predicted.get("energy_saving") is not None:
            saving = 100.0 * float(self.schedule.predicted["energy_saving"])
            label = self.schedule.extra.get("saving_label") or (
                "simulated" if getattr(self.device, "kind", "") == "sim" else "planned")
        online = self.online
        return {
            "phase": self.phase,
            "steps_by_phase": dict(self.steps_by_phase),
            "options_measured": online.search.options_measured if online and online.search
            else self.options_measured,
            "options_total": online.search.options_total if online and online.search
            else self.options_total,
            "planned_energy_saving_pct": saving,
            "saving_label": label,
            "mode": ("predicted" if online and online.predicted else
                     "measured" if online else "simulated"),
            "steps_per_option": (online.search.steps_per_option() if online and online.search
                                 else {}),
            "drift_events": self.drift_events,
            "fallback_reason": self.fallback_reason,
            "device": getattr(self.device, "name", ""),
        }

    def savings(self) -> dict:
        """Predicted figures of the schedule against the all-max baseline."""
        if self.schedule is None:
            raise ConfigError("no schedule yet", "run one training step (or call prepare) first")
        p = self.schedule.predicted
        return {k: p.get(k) for k in ("time_s", "energy_j", "baseline_time_s",
                                      "baseline_energy_j", "energy_saving", "slowdown",
                                      "energy_scope", "source")}

    def close(self) -> None:
        if self.online is not None:
            self.online.close()
        if self.enforcer is not None:
            self.enforcer.close()
