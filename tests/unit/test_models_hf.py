"""Real model families (Hugging Face, built from tiny configs with random weights, and a CNN)
under both wrappers: they trace with and without padding masks, train exactly as in eager
mode, and never break training."""

import copy
import inspect

import pytest

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")
for mod in ("gearshift.trace", "gearshift.partition", "gearshift.search.iteration"):
    pytest.importorskip(mod)

import gearshift  # noqa: E402
from gearshift.integrations import GearshiftConfig, dynamo  # noqa: E402
from gearshift.trace import trace_step  # noqa: E402

B, S, V = 2, 12, 96
_LM = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
           num_key_value_heads=2, vocab_size=V, attention_dropout=0.0)
_ENC = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2,
            vocab_size=V, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


class TinyResNet(torch.nn.Module):
    """A torchvision-style residual CNN (conv-bn-relu blocks, pooling, classifier); torchvision
    and timm are not installed here (their wheels need a CUDA build of torch)."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                        torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                         torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                         torch.nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                         torch.nn.BatchNorm2d(8))
        self.head = torch.nn.Linear(8, classes)

    def forward(self, pixel_values, labels=None):
        x = self.stem(pixel_values)
        x = torch.relu(x + self.block(x))
        logits = self.head(x.mean((2, 3)))
        return torch.nn.functional.cross_entropy(logits, labels)


def _families():
    return {
        "gpt2": (lambda: T.GPT2LMHeadModel(T.GPT2Config(
            n_layer=2, n_embd=32, n_head=2, vocab_size=V, n_positions=64, resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0)), "lm"),
        "llama": (lambda: T.LlamaForCausalLM(T.LlamaConfig(**_LM)), "lm"),
        "mistral": (lambda: T.MistralForCausalLM(T.MistralConfig(**_LM)), "lm"),
        "qwen2": (lambda: T.Qwen2ForCausalLM(T.Qwen2Config(**_LM)), "lm"),
        "qwen3": (lambda: T.Qwen3ForCausalLM(T.Qwen3Config(**_LM, head_dim=8)), "lm"),
        "bert": (lambda: T.BertForSequenceClassification(T.BertConfig(**_ENC)), "cls"),
        "roberta": (lambda: T.RobertaForSequenceClassification(T.RobertaConfig(**_ENC)), "cls"),
        "t5": (lambda: T.T5ForConditionalGeneration(T.T5Config(
            num_layers=2, d_model=32, d_ff=64, num_heads=2, d_kv=16, vocab_size=V,
            dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0)), "s2s"),
        "vit": (lambda: T.ViTForImageClassification(T.ViTConfig(
            num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2,
            image_size=32, patch_size=8, num_labels=3, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)), "img"),
        "cnn": (TinyResNet, "img"),
    }


FAMILIES = list(_families())


def _inputs(kind, mask=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == "img":
        return {"pixel_values": torch.randn(B, 3, 32, 32, generator=g),
                "labels": torch.tensor([0, 2])}
    ids = torch.randint(3, V, (B, S), generator=g)
    d = {"input_ids": ids}
    if mask:                       # the second row is padded, as a collator pads it
        am = torch.ones(B, S, dtype=torch.long)
        am[1, S // 2:] = 0
        d["attention_mask"] = am
    d["labels"] = {"lm": ids, "cls": torch.tensor([0, 1]), "s2s": ids[:, :6].clone()}[kind]
    return d


def _loss(out):
    return out if isinstance(out, torch.Tensor) else out.loss


def _train(call, params, kind, steps=2):
    opt = torch.optim.AdamW(params, lr=1e-3)
    losses = []
    for i in range(steps):
        loss = _loss(call(**_inputs(kind, seed=i)))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    # inductor's C++ build takes tens of seconds per model on CPU; the compiled graph runs as
    # dynamo captured it (test_compile_dynamo runs inductor itself)
    import torch._inductor.compile_fx as cfx

    monkeypatch.setattr(cfx, "compile_fx", lambda gm, ex, **kw: gm.forward)
    dynamo.reset()
    torch._dynamo.reset()
    yield
    dynamo.reset()
    torch._dynamo.reset()


def _model(name):
    torch.manual_seed(0)
    make, kind = _families()[name]
    return make(), kind


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("mask", [False, True])
def test_family_traces_with_and_without_padding_mask(name, mask):
    model, kind = _model(name)
    if kind == "img" and mask:
        pytest.skip("images have no padding mask")
    t = trace_step(model, _inputs(kind, mask))
    assert t.meta["trace_device"] == "meta"          # no CPU copy was needed
    assert {"forward", "backward", "optimizer"} <= {k.phase for k in t.kernels}
    assert t.total_flops() > 0


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("wrapper", ["gearshift.compile", "torch.compile"])
def test_family_trains_exactly_as_eager_under_both_wrappers(name, wrapper):
    model, kind = _model(name)
    eager_model = copy.deepcopy(model)
    eager = _train(eager_model, eager_model.parameters(), kind)
    cfg = GearshiftConfig(device="sim", progress=False)
    if wrapper == "gearshift.compile":
        wrapped = gearshift.compile(model, cfg)
        runner = wrapped.gearshift
    else:
        wrapped = torch.compile(model, backend=dynamo.backend(cfg))
    losses = _train(wrapped, model.parameters(), kind)
    runner = wrapped.gearshift
    assert losses == pytest.approx(eager, abs=1e-5)
    st = runner.status()
    assert st["phase"] == "enforce", st
    assert runner.enforcer.iterations == 2 and st["iterations_count"] == "optimizer steps"
    assert st["explanation"] and "frontier" in st


def test_compile_keeps_signature_class_and_state_dict(tmp_path):
    model, _ = _model("gpt2")
    sig = inspect.signature(model.forward)
    keys = list(model.state_dict())
    cls = type(model)
    g = gearshift.compile(model, device="sim", progress=False)
    assert g is model and isinstance(g, cls) and type(g).__name__ == cls.__name__
    assert inspect.signature(g.forward) == sig            # Trainer reads its columns from it
    assert list(g.state_dict()) == keys                   # no "module." prefix
    assert g.lm_head.weight is g.transformer.wte.weight   # tied weights stay tied
    g.save_pretrained(tmp_path)                           # what Trainer.save_model calls
    again = T.GPT2LMHeadModel.from_pretrained(tmp_path)
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
    assert gearshift.integrations.wrap.unwrap(g) is model and type(model) is cls


def test_gradient_accumulation_counts_optimizer_steps():
    model, kind = _model("llama")
    g = gearshift.compile(model, device="sim", progress=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(3):
        for micro in range(4):
            _loss(g(**_inputs(kind, seed=micro))).backward()
        opt.step()
        opt.zero_grad()
    # the optimizer existed at the first step: every window of 4 micro-batches is one iteration
    assert g.gearshift.enforcer.iterations == 3
    assert g.gearshift.status()["iterations_count"] == "optimizer steps"
    # a batch of another shape is priced as the traced one, and the status says so
    longer = torch.randint(3, V, (B, S + 4))
    _loss(g(input_ids=longer, labels=longer)).backward()
    opt.step()
    st = g.gearshift.status()
    assert st["steps_unlike_traced_batch"] == 1 and "price the traced batch" in st["explanation"]


def test_a_failing_device_falls_back_with_one_warning(monkeypatch):
    from gearshift.integrations import runner as runner_mod
    from gearshift.errors import DeviceError

    def broken(*a, **k):
        raise DeviceError("the simulated GPU is broken", "use another device")

    monkeypatch.setattr(runner_mod, "open_device", broken)
    model, kind = _model("bert")
    eager_model = copy.deepcopy(model)
    eager = _train(eager_model, eager_model.parameters(), kind)
    with pytest.warns(RuntimeWarning) as rec:
        g = gearshift.compile(model, device="sim", progress=False)
        losses = _train(g, model.parameters(), kind)
    ours = [w for w in rec if "gearshift" in str(w.message)]
    assert len(ours) == 1 and "opening the device failed" in str(ours[0].message)
    assert "use another device" in str(ours[0].message)
    assert losses == pytest.approx(eager, abs=1e-5)
    assert g.gearshift.status()["phase"] == "fallback"


def test_torch_compile_takes_mode_options_and_one_runner_per_model(monkeypatch):
    seen = {}

    import torch._inductor.compile_fx as cfx

    def fake(gm, ex, config_patches=None):
        seen.update(config_patches or {})
        return gm.forward

    monkeypatch.setattr(cfx, "compile_fx", fake)
    monkeypatch.setenv("GEARSHIFT_DEVICE", "sim")
    from gearshift.config import environment

    environment.cache_clear()
    a, kind = _model("gpt2")
    b, _ = _model("gpt2")
    # torch.compile takes mode= or options=, not both
    ca = torch.compile(a, backend="gearshift", options={
        "gearshift.progress": False, "gearshift.objective": "max-slowdown=1.05",
        "epilogue_fusion": False})
    cb = torch.compile(b, backend="gearshift", mode="max-autotune-no-cudagraphs")
    try:
        _train(ca, a.parameters(), kind, steps=1)
        assert seen == {"epilogue_fusion": False}            # inductor's options, not ours
        _train(cb, b.parameters(), kind, steps=1)
    finally:
        environment.cache_clear()
    assert seen.get("max_autotune") is True             # the mode reached inductor
    assert ca.gearshift is not cb.gearshift              # each compiled model has its runner
    assert ca.gearshift.config.objective == "max-slowdown=1.05"
    assert ca.gearshift.enforcer.iterations == 1 and cb.gearshift.enforcer.iterations == 1


def test_torch_compile_of_a_model_gearshift_already_wraps_keeps_one_runner():
    model, kind = _model("gpt2")
    g = gearshift.compile(model, device="sim", progress=False)
    compiled = torch.compile(g, backend=dynamo.backend(GearshiftConfig(device="sim",
                                                                       progress=False)))
    _train(compiled, model.parameters(), kind)
    assert compiled.gearshift is g.gearshift and g.gearshift.enforcer.iterations == 2
