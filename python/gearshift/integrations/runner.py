"""The gearshift side of a wrapped model (``model.gearshift``): device, plan, schedule, enforcer."""

from __future__ import annotations

from pathlib import Path

import torch

from ..devices import open_device
from ..errors import ConfigError
from ..model import Schedule
from .config import GearshiftConfig
from .enforce import Enforcer, partitioning_of
from ..plan import Plan, plan_for


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
        self.device = open_device(config.device, preset=config.sim_preset)
        from ..monitor import set_current_device  # noqa: PLC0415

        set_current_device(self.device)
        self.plan: Plan | None = None
        self.schedule: Schedule | None = None
        self.enforcer: Enforcer | None = None
        self.loaded_from: str | None = None

    @property
    def ready(self) -> bool:
        return self.enforcer is not None

    def prepare(self, example_inputs) -> Schedule:
        """Trace, then load or plan the schedule; idempotent."""
        if self.ready:
            return self.schedule
        from ..profile.progress import Stage  # noqa: PLC0415
        from ..trace import trace_step  # noqa: PLC0415

        with Stage(f"tracing one training step of {self.model_name}", self.config.progress):
            trace = trace_step(self.model, example_inputs, self.loss_fn, self.optimizer_factory,
                               model_name=self.model_name)
        path = self.config.schedule_path
        baseline = None
        if path and Path(path).exists():
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
            baseline = self.plan.frontier.baseline.choices if self.plan.frontier.baseline else None
            if path:
                schedule.save(path)
        self.schedule = schedule
        self.enforcer = Enforcer(self.device, trace, schedule, partitioning, baseline)
        return schedule

    def on_step(self, example_inputs) -> None:
        if not self.ready:
            self.prepare(example_inputs)
        self.enforcer.step()

    def savings(self) -> dict:
        """Predicted figures of the schedule against the all-max baseline."""
        if self.schedule is None:
            raise ConfigError("no schedule yet", "run one training step (or call prepare) first")
        p = self.schedule.predicted
        return {k: p.get(k) for k in ("time_s", "energy_j", "baseline_time_s",
                                      "baseline_energy_j", "energy_saving", "slowdown",
                                      "energy_scope", "source")}

    def status(self) -> dict:
        """What is applied to the step now (keys by owner: OWNERS.md); the overlap half's keys
        come from integrations/overlap_pass.py."""
        from . import overlap_pass  # noqa: PLC0415

        return overlap_pass.state_of(self).status()

    def close(self) -> None:
        if self.enforcer is not None:
            self.enforcer.close()
