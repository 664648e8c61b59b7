"""Lightning integration: ``L.Trainer(..., callbacks=[GearshiftCallback()])``.

A LightningModule's step is ``training_step(batch, batch_idx)``, not its forward, so the
callback traces that: the loss it returns, its backward and the optimizer step. Each optimizer
step is one iteration (``accumulate_grad_batches`` micro-batches). It logs
``gearshift/planned_energy_saving_pct`` and ``gearshift/fallback`` (0 or 1), and stores the
schedule in every checkpoint (``checkpoint["gearshift"]``) and beside it
(``<checkpoint dir>/gearshift_schedule.json``).
"""

from __future__ import annotations

import copy

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    from pytorch_lightning.callbacks import Callback

from .config import GearshiftConfig


class _TrainingStep(torch.nn.Module):
    """The LightningModule's training_step as a module the tracer can run: batch -> loss."""

    def __init__(self, pl_module):
        super().__init__()
        self.pl_module = pl_module

    def forward(self, batch):
        if getattr(self.pl_module, "_trainer", None) is None:   # the tracer's copy
            import warnings  # noqa: PLC0415

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*self.log.*")
                out = self.pl_module.training_step(batch, 0)
        else:
            out = self.pl_module.training_step(batch, 0)
        return out["loss"] if isinstance(out, dict) else out

    def __deepcopy__(self, memo):
        # the tracer copies the module; the Trainer it points to (loggers, data, processes)
        # is not part of the step: the copy has none (self.log then warns and does nothing)
        trainer = getattr(self.pl_module, "_trainer", None)
        if trainer is not None:
            memo[id(trainer)] = None
        new = _TrainingStep.__new__(_TrainingStep)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new


class GearshiftCallback(Callback):
    """``GearshiftCallback(config=None, **overrides)``: what to optimise and where."""

    def __init__(self, config: GearshiftConfig | None = None, **overrides):
        config = config or GearshiftConfig()
        self.config = config.replace(**overrides) if overrides else config
        self.runner = None

    def on_fit_start(self, trainer, pl_module):
        from .runner import Runner  # noqa: PLC0415
        from .wrap import _RUNNERS, _ensure_optimizer_hook  # noqa: PLC0415

        step = _TrainingStep(pl_module)
        self.runner = Runner(step, self.config, loss_fn=lambda loss: loss,
                             model_name=type(pl_module).__name__)
        self.runner.count_on_optimizer = True
        _RUNNERS[pl_module] = self.runner      # its optimizer steps end iterations
        _ensure_optimizer_hook()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.runner is not None:
            self.runner.guarded_step((batch,))   # one positional argument: the batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.runner is None:
            return
        st = self.runner.status()
        pl_module.log("gearshift/fallback", float(st["phase"] == "fallback"), on_step=True)
        if "planned_energy_saving_pct" in st:
            pl_module.log("gearshift/planned_energy_saving_pct",
                          float(st["planned_energy_saving_pct"]), on_step=True)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.runner is None:
            return
        checkpoint["gearshift"] = {"status": self.runner.status(), "schedule":
                                   self.runner.schedule.to_json() if self.runner.schedule
                                   else None}
        ckpt = getattr(trainer, "checkpoint_callback", None)
        folder = getattr(ckpt, "dirpath", None)
        if folder and trainer.is_global_zero:
            from .saving import save_beside  # noqa: PLC0415

            save_beside(self.runner, folder)

    def on_fit_end(self, trainer, pl_module):
        if self.runner is not None:
            from .wrap import _RUNNERS  # noqa: PLC0415

            _RUNNERS.pop(pl_module, None)
            self.runner.close()
