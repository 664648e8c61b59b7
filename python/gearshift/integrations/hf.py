"""Hugging Face ``Trainer`` integration: ``Trainer(..., callbacks=[GearshiftCallback()])``.

The callback wraps the Trainer's model with ``gearshift.compile`` when training begins (the model
keeps its class, forward signature and state dict, so the Trainer's column pruning and
``save_model`` work as before), counts one iteration per optimizer step (gradient accumulation),
adds ``gearshift_phase`` / ``gearshift_planned_energy_saving_pct`` to the logs, and writes the
schedule and status beside every checkpoint (``checkpoint-N/gearshift_schedule.json``,
``gearshift_status.json``) and into the output folder when training ends.

``TrainingArguments(torch_compile_backend="gearshift")`` is refused by accelerate (it knows
only its own backend names); use this callback, or ``torch.compile(model, backend="gearshift")``
before handing the model to the Trainer.
"""

from __future__ import annotations

import logging
import os

from transformers import TrainerCallback

from .config import GearshiftConfig
from .saving import save_beside

log = logging.getLogger("gearshift")

class GearshiftCallback(TrainerCallback):
    """``GearshiftCallback(config=None, **overrides)``: the GearshiftConfig (or its fields, e.g.
    ``objective="max-slowdown=1.05"``) used to wrap the Trainer's model."""

    def __init__(self, config: GearshiftConfig | None = None, **overrides):
        config = config or GearshiftConfig()
        self.config = config.replace(**overrides) if overrides else config
        self.runner = None
        self._phase = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from .wrap import compile as wrap, runner_of  # noqa: PLC0415

        if model is None:
            return
        self.runner = runner_of(model)
        if self.runner is None:
            wrap(model, self.config)
            self.runner = runner_of(model)
        # the Trainer steps the optimizer once per gradient_accumulation_steps micro-batches
        self.runner.count_on_optimizer = True
        log.info("gearshift: wrapped %s (%s)", type(model).__name__, self.runner.phase)

    def on_step_end(self, args, state, control, **kwargs):
        if self.runner is not None and self.runner.phase != self._phase:
            self._phase = self.runner.phase
            log.info("gearshift: phase %s at step %d: %s", self._phase, state.global_step,
                     self.runner.explanation)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.runner is None or logs is None:
            return
        st = self.runner.status()
        extra = {"gearshift_phase": st["phase"]}
        if "planned_energy_saving_pct" in st:
            extra["gearshift_planned_energy_saving_pct"] = round(
                st["planned_energy_saving_pct"], 3)
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)

    def on_save(self, args, state, control, **kwargs):
        if self.runner is not None and state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            save_beside(self.runner, folder)

    def on_train_end(self, args, state, control, **kwargs):
        if self.runner is not None and state.is_world_process_zero:
            save_beside(self.runner, args.output_dir)
