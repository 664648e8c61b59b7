"""Hugging Face Trainer and Lightning with gearshift: columns kept, checkpoints saved with the
schedule beside them, gradient accumulation counted per optimizer step."""

import json
import os

import pytest

torch = pytest.importorskip("torch")
for mod in ("gearshift.trace", "gearshift.partition", "gearshift.search.iteration"):
    pytest.importorskip(mod)

import gearshift  # noqa: E402

V, S = 64, 8


def _dataset(n=8):
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        ids = torch.randint(3, V, (S,), generator=g)
        mask = torch.ones(S, dtype=torch.long)
        mask[S - 1 - i % 3:] = 0
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": ids.clone(),
                     "unused_column": "text the model never sees"})
    return rows


def _gpt2():
    T = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return T.GPT2LMHeadModel(T.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=V,
                                          n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
                                          attn_pdrop=0.0))


def _trainer(model, out, callbacks=(), steps=2, accumulation=2):
    T = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    args = T.TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=2,
                               gradient_accumulation_steps=accumulation, learning_rate=1e-3,
                               logging_steps=1, save_steps=steps, report_to=[], use_cpu=True,
                               dataloader_num_workers=0, seed=0)
    return T.Trainer(model=model, args=args, train_dataset=_dataset(), callbacks=list(callbacks))


def test_trainer_with_callback_trains_saves_and_counts_optimizer_steps(tmp_path):
    from gearshift.integrations.hf import GearshiftCallback

    eager = _trainer(_gpt2(), tmp_path / "eager")
    eager.train()
    cb = GearshiftCallback(device="sim", progress=False)
    tr = _trainer(_gpt2(), tmp_path / "gs", [cb])
    tr.train()
    losses = [h["loss"] for h in tr.state.log_history if "loss" in h]
    assert losses == pytest.approx([h["loss"] for h in eager.state.log_history if "loss" in h],
                                   abs=1e-5)
    run = tr.model.gearshift
    assert run.status()["phase"] == "enforce"
    # 2 optimizer steps of 2 micro-batches each: two iterations, not four
    assert run.enforcer.iterations == 2
    logged = [h for h in tr.state.log_history if "gearshift_phase" in h]
    assert logged and logged[-1]["gearshift_phase"] == "enforce"
    assert "gearshift_planned_energy_saving_pct" in logged[-1]
    ckpt = tmp_path / "gs" / "checkpoint-2"
    assert (ckpt / "model.safetensors").exists()           # tied weights saved
    sched = json.loads((ckpt / "gearshift_schedule.json").read_text())
    assert sched["num_kernels"] == len(run.enforcer.trace)
    assert json.loads((ckpt / "gearshift_status.json").read_text())["phase"] == "enforce"


def test_trainer_keeps_columns_of_a_compiled_model(tmp_path):
    # the Trainer drops dataset columns the forward does not name; a wrapper hiding the
    # signature behind *args, **kwargs made it drop every column
    model = gearshift.compile(_gpt2(), device="sim", progress=False)
    tr = _trainer(model, tmp_path / "c", steps=1, accumulation=1)
    tr.train()
    tr.save_model(str(tmp_path / "saved"))
    assert os.path.exists(tmp_path / "saved" / "model.safetensors")
    assert model.gearshift.enforcer.iterations == 1


def test_lightning_callback(tmp_path):
    L = pytest.importorskip("lightning")
    from gearshift.integrations.lightning import GearshiftCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(),
                                           torch.nn.Linear(32, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8, generator=g)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1] * 2),
                                       batch_size=8)
    cb = GearshiftCallback(device="sim", progress=False)
    trainer = L.Trainer(max_epochs=1, accumulate_grad_batches=2, callbacks=[cb],
                        default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    torch.manual_seed(0)
    trainer.fit(Module(), data)
    st = cb.runner.status()
    assert st["phase"] == "enforce", st
    assert cb.runner.enforcer.iterations == 2           # 4 batches, 2 optimizer steps
    ckpts = list(tmp_path.rglob("*.ckpt"))
    assert ckpts
    saved = torch.load(ckpts[0], weights_only=False)
    assert saved["gearshift"]["schedule"]["num_kernels"] == len(cb.runner.enforcer.trace)
    assert (ckpts[0].parent / "gearshift_schedule.json").exists()
