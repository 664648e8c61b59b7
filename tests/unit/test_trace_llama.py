"""Kareus's models in the zoo: Llama 3.2 3B and Qwen3 1.7B (GQA, SwiGLU, RMSNorm, rotary),
their -tp8 presets and `gearshift trace --hf-config` (issue #13)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gearshift.cli import main
from gearshift.errors import TraceError
from gearshift.model import KernelTrace
from gearshift.trace import presets, trace_preset
from gearshift.trace.zoo import LLAMA_PRESETS, build, llama_config_from_hf

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name,config,params_b", [
    ("llama-3.2-3b", "llama-3.2-3b-config.json", 3.21),   # published: 3.21 B
    ("qwen3-1.7b", "qwen3-1.7b-config.json", 1.72),       # published: 1.7 B (1.4 B non-embedding)
])
def test_hf_config_gives_the_published_model(name, config, params_b):
    raw = json.loads((DATA / config).read_text())
    cfg = llama_config_from_hf(raw)
    assert cfg == LLAMA_PRESETS[name]
    module, _, _, _ = build(name)
    n = sum(p.numel() for p in module.parameters())
    assert n / 1e9 == pytest.approx(params_b, abs=0.01)
    assert f"{name}-tp8" in presets()


def test_tp8_preset_shards_gqa_attention_and_all_reduces():
    tr = trace_preset("llama-3.2-3b-tp8", layers=2)
    cfg = tr.meta["config"]
    assert cfg["tp"] == 8 and cfg["heads"] == 24 and cfg["kv_heads"] == 8
    comm = Counter((k.phase, k.comm_op) for k in tr.kernels if k.kind == "comm")
    # forward: embedding + 2 per layer; backward: 2 per layer + the LM head's input gradient
    assert comm == {("forward", "all_reduce"): 5, ("backward", "all_reduce"): 5}
    ar = next(k for k in tr.kernels if k.kind == "comm" and k.module == "blocks.0.attn")
    assert ar.comm_bytes == 4096 * 4 * 3072 * 2          # [T, B, H] bf16, the full activation
    # 3 query heads and 1 KV head per rank, KV shared across the queries before attention
    fa = next(k for k in tr.kernels if "flash_attention(" in k.name)
    assert fa.name.startswith("aten::_scaled_dot_product_flash_attention(4x3x4096x128,")
    qkv = next(k for k in tr.kernels if k.module == "blocks.0.attn.qkv")
    assert "3072x640" in qkv.name                          # (3 + 2 x 1) x 128 columns
    # the all-reduce's consumer is the residual add, not the next layer's GEMM
    i = tr.kernels.index(ar)
    assert i in tr.kernels[i + 1].deps


def test_qwen3_normalises_queries_and_keys():
    tr = trace_preset("qwen3-1.7b-tp8", layers=1)
    llama = trace_preset("llama-3.2-3b-tp8", layers=1)
    assert any(k.module.endswith("attn.q_norm") for k in tr.kernels)
    assert not any(k.module.endswith("attn.q_norm") for k in llama.kernels)


def test_trace_cli_hf_config(tmp_path, capsys):
    out = tmp_path / "t.json"
    main(["trace", "--hf-config", str(DATA / "qwen3-1.7b-config.json"), "--tp", "8",
          "--layers", "2", "--seq", "512", "--nanobatches", "2", "--out", str(out)])
    text = capsys.readouterr().out
    t = KernelTrace.load(out)
    assert t.model == "qwen3-1.7b-tp8" and t.nanobatches == 2 and "all_reduce" in text
    assert t.meta["config"]["seq"] == 512 and t.meta["config"]["batch"] == 4
    (tmp_path / "bad.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(SystemExit):
        main(["trace", "--hf-config", str(tmp_path / "bad.json")])
    assert "model_type 'bert'" in capsys.readouterr().err
    with pytest.raises(TraceError, match="not divisible by tp 5"):
        llama_config_from_hf(json.loads((DATA / "qwen3-1.7b-config.json").read_text()), tp=5)


def test_fused_kernels_match_the_eager_ops_and_launch_one_kernel_each():
    import torch

    from gearshift.trace import fused

    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    cos, sin = torch.randn(3, 1, 8, dtype=torch.float64), torch.randn(3, 1, 8, dtype=torch.float64)
    gu = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fused.rms_norm(a, b, 1e-5)[0], (x, w))
    assert torch.autograd.gradcheck(lambda a: fused.rope(a, cos, sin), (x,))
    assert torch.autograd.gradcheck(fused.swiglu, (gu,))
    ref = torch.nn.functional.rms_norm(x, (8,), w, 1e-5)
    assert torch.allclose(fused.rms_norm(x, w, 1e-5)[0], ref)
    g, u = gu.chunk(2, -1)
    assert torch.allclose(fused.swiglu(gu), torch.nn.functional.silu(g) * u)
    # traced: one kernel per call forward and one backward, where eager launches 5-8
    tr = trace_preset("llama-3.2-3b-tp8", layers=1)
    eager = trace_preset("llama-3.2-3b-tp8", layers=1, fused=False)
    norms = [k.op for k in tr.kernels if k.module == "blocks.0.input_norm"]
    # (the backward also adds the residual's gradient to the norm's: an aten::add)
    assert [o for o in norms if o.startswith("gearshift_fused")] == [
        "gearshift_fused::rms_norm", "gearshift_fused::rms_norm_backward"]
    assert len(norms) <= 3
    assert len([k for k in eager.kernels if k.module == "blocks.0.input_norm"]) >= 8
    assert len(eager) > len(tr) + 40


def test_pipeline_stages_are_traced_as_their_own_parts_of_the_model():
    """pp_stage: the first stage holds the embedding, the last the final norm, the vocab-parallel
    LM head and the loss; a stage that does not start the model differentiates its input (the
    gradient it sends back), one that does not end it launches no loss kernel."""
    kw = dict(layers=2, batch=2, seq=256)
    first = trace_preset("llama-3.2-3b-tp8", pp_stage="first", **kw)
    last = trace_preset("llama-3.2-3b-tp8", pp_stage="last", **kw)
    middle = trace_preset("llama-3.2-3b-tp8", pp_stage="middle", **kw)

    def has(tr, word, phase="forward"):
        return any(word in k.name and k.phase == phase for k in tr.kernels)

    assert has(first, "embedding") and has(first, "embedding_dense_backward", "backward")
    assert not has(last, "embedding") and not has(middle, "embedding")
    vocab_shard = 128256 // 8
    lm_head = [k for k in last.kernels if k.phase == "forward" and k.name.startswith("aten::mm")
               and str(vocab_shard) in k.name]
    assert lm_head, "the last stage's LM head GEMM ([T*B, 3072] x [3072, vocab/8])"
    assert not any(str(vocab_shard) in k.name for k in first.kernels if k.phase == "forward"
                   and k.name.startswith("aten::mm"))
    # the collectives: first = embedding + 2/layer forward, 2/layer backward; last = 2/layer
    # forward, 2/layer + the LM head input's gradient backward; middle = 2/layer each way
    count = {n: Counter(k.phase for k in t.kernels if k.kind == "comm")
             for n, t in (("first", first), ("last", last), ("middle", middle))}
    assert count["first"] == {"forward": 5, "backward": 4}
    assert count["last"] == {"forward": 4, "backward": 5}
    assert count["middle"] == {"forward": 4, "backward": 4}
    # the last stage computes the loss (cross entropy over its vocab shard); the others do not
    assert any(k.module == "loss" for k in last.kernels) or has(last, "log_softmax")
    assert not has(first, "log_softmax") and not has(middle, "log_softmax")
    # more work on the last stage than on the middle one of the same layers (head + loss)
    work = {n: sum(k.flops or 0 for k in t.kernels) for n, t in
            (("last", last), ("middle", middle))}
    assert work["last"] > 1.2 * work["middle"]


def test_unknown_pipeline_stage_is_refused():
    with pytest.raises(TraceError, match="pp_stage"):
        trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="second")
