"""The op-level tracer: kernels, FLOPs, bytes, phases, module paths, collectives, errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gearshift.errors import FormatError, TraceError  # noqa: E402
from gearshift.model import KernelTrace  # noqa: E402
from gearshift.trace import trace_preset, trace_step  # noqa: E402
from gearshift.trace.zoo import GPT_PRESETS  # noqa: E402

PHASE_ORDER = {"forward": 0, "backward": 1, "optimizer": 2}


@pytest.fixture(scope="module")
def tiny():
    return trace_preset("gpt-tiny")


def _matmul_flops(trace, phase):
    return sum(k.flops for k in trace.kernels
               if k.phase == phase and k.op in ("aten::mm", "aten::addmm"))


def test_phases_in_step_order(tiny):
    order = [PHASE_ORDER[k.phase] for k in tiny.kernels]
    assert order == sorted(order)
    assert set(order) == {0, 1, 2}
    assert tiny.source == "op-tracer" and tiny.device == "meta"


def test_linear_flops_match_the_analytic_count(tiny):
    c = GPT_PRESETS["gpt-tiny"]
    tokens, h = c.batch * c.seq, c.hidden
    per_layer = 3 * h * h + h * h + 2 * c.mlp_ratio * h * h
    expect = 2 * tokens * (c.layers * per_layer + h * c.vocab)
    assert _matmul_flops(tiny, "forward") == expect
    # every linear has a weight gradient and an input gradient in the backward pass
    assert _matmul_flops(tiny, "backward") == 2 * expect


def test_attention_is_the_fused_kernel_a_gpu_runs(tiny):
    fwd = [k for k in tiny.kernels if k.op == "aten::_scaled_dot_product_flash_attention"]
    assert len(fwd) == GPT_PRESETS["gpt-tiny"].layers and all(k.flops > 0 for k in fwd)
    assert not any(k.op == "aten::bmm" for k in tiny.kernels)
    # flash backward launches three kernels (kernels.MULTI_KERNEL_OPS)
    bwd = [k.name.rsplit("/", 1)[1] for k in tiny.kernels
           if k.op == "aten::_scaled_dot_product_flash_attention_backward"]
    assert bwd == ["preprocess", "main", "convert_dq"] * GPT_PRESETS["gpt-tiny"].layers


def test_bytes_come_from_tensor_sizes(tiny):
    c = GPT_PRESETS["gpt-tiny"]
    gelu = next(k for k in tiny.kernels if k.op == "aten::gelu")
    n = c.batch * c.seq * c.mlp_ratio * c.hidden * 2  # bf16
    assert gelu.bytes_read == n and gelu.bytes_written == n
    assert all(k.bytes_total and k.bytes_total > 0 for k in tiny.kernels)


def test_module_paths_forward_and_backward(tiny):
    for phase in ("forward", "backward"):
        mods = {k.module for k in tiny.kernels if k.phase == phase}
        assert {"blocks.0.attn.qkv", "blocks.1.mlp.fc", "blocks.0.ln_1", "lm_head"} <= mods
    bwd_blocks = [int(k.module.split(".")[1]) for k in tiny.kernels
                  if k.phase == "backward" and k.module.startswith("blocks.")]
    assert bwd_blocks == sorted(bwd_blocks, reverse=True)
    # the attention kernel belongs to attn itself, not to the projection that consumed it
    flash_bwd = {k.module for k in tiny.kernels if "flash_attention_backward" in k.op}
    assert flash_bwd == {"blocks.0.attn", "blocks.1.attn"}
    assert {k.module for k in tiny.kernels if k.op == "aten::nll_loss_backward"} == {"loss"}
    assert all(k.module == "" for k in tiny.kernels if k.phase == "optimizer")


def test_optimizer_is_a_steady_state_foreach_step(tiny):
    opt = [k for k in tiny.kernels if k.phase == "optimizer"]
    assert opt and all(k.op.startswith("aten::_foreach_") for k in opt)
    assert not any(k.op == "aten::zeros_like" for k in opt)  # state exists: not the first step


def test_layer_norm_backward_is_two_kernels(tiny):
    parts = [k.name.rsplit("/", 1)[1] for k in tiny.kernels
             if k.op == "aten::native_layer_norm_backward"]
    assert parts == ["dx", "dgamma_dbeta"] * (2 * GPT_PRESETS["gpt-tiny"].layers + 1)


def test_tensor_parallel_collectives_are_comm_kernels():
    t = trace_preset("gpt-tiny-tp2")
    c = GPT_PRESETS["gpt-tiny-tp2"]
    comm = [k for k in t.kernels if k.kind == "comm"]
    by_phase = {p: [k.comm_op for k in comm if k.phase == p] for p in ("forward", "backward")}
    per_layer = ["all_gather", "reduce_scatter"] * 2
    assert by_phase["forward"] == per_layer * c.layers + ["all_gather"]
    swap = {"all_gather": "reduce_scatter", "reduce_scatter": "all_gather"}
    # the gradient of an all-gather is a reduce-scatter and vice versa, in reverse order
    assert by_phase["backward"] == [swap[o] for o in reversed(by_phase["forward"])]
    full = c.batch * c.seq * c.hidden * 2
    assert t.meta["tp"] == t.meta["world_size"] == c.tp
    assert all(k.comm_bytes == full for k in comm)
    assert all(k.flops is None for k in comm)
    assert {k.module.split(".")[-1] for k in comm if k.module} == {"attn", "mlp"}


def test_resnet_convolutions():
    t = trace_preset("resnet-tiny")
    conv = [k for k in t.kernels if k.op == "aten::convolution"]
    assert len(conv) == 1 + 4 * 3 + 4  # stem, 3 per bottleneck, a downsample per stage
    assert all(k.flops > 0 for k in conv)
    parts = {k.name.rsplit("/", 1)[1] for k in t.kernels if k.op == "aten::convolution_backward"}
    assert parts == {"dgrad", "wgrad"}
    assert {k.module for k in conv} >= {"stem.0", "layer1.0.conv1", "layer4.0.downsample.0"}


def test_trace_survives_save_and_load(tmp_path, tiny):
    tiny.save(tmp_path / "t.json")
    back = KernelTrace.load(tmp_path / "t.json")
    assert back.signature() == tiny.signature()
    assert [k.to_json() for k in back.kernels] == [k.to_json() for k in tiny.kernels]
    assert back.meta["preset"] == "gpt-tiny" and back.meta["params"] == tiny.meta["params"]


def test_signature_stable_and_sensitive(tiny):
    assert trace_preset("gpt-tiny").signature() == tiny.signature()
    assert trace_preset("gpt-tiny", layers=3).signature() != tiny.signature()
    assert trace_preset("gpt-tiny", hidden=128).signature() != tiny.signature()


def test_users_module_is_traced_on_a_data_free_copy():
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    w = m[0].weight.detach().clone()
    t = trace_step(m, torch.randn(4, 8), loss_fn=lambda y: y.pow(2).mean(),
                   optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.1, foreach=True))
    assert m[0].weight.device.type == "cpu" and torch.equal(m[0].weight, w)
    assert [k.module for k in t.kernels if k.op == "aten::addmm"] == ["0", "2"]
    assert any(k.phase == "optimizer" for k in t.kernels)
    cpu = trace_step(m, torch.randn(4, 8), loss_fn=lambda y: y.pow(2).mean(),
                     optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.1, foreach=True),
                     device="cpu")
    assert cpu.signature() == t.signature() and torch.equal(m[0].weight, w)


def test_models_larger_than_memory_trace_on_meta():
    t = trace_preset("gpt-13b")    # bf16 weights alone are ~26 GB, more than this machine has
    assert t.meta["params"] > 12e9
    assert t.total_flops() > 6 * 12e9 * 4 * 2048


def test_gpt_1_3b_traces():
    t = trace_preset("gpt-1.3b")
    assert 1.2e9 < t.meta["params"] < 1.4e9
    n = 6 * t.meta["params"] * 8 * 2048        # the 6 N D rule, plus attention
    assert n < t.total_flops() < 1.3 * n


class _ItemInForward(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        return y if y.sum().item() > 0 else -y


def test_value_of_an_activation_is_traced_on_a_cpu_copy():
    # on meta, .item() of a value computed from the weights has no answer: named op and module
    with pytest.raises(TraceError, match=r"aten::_local_scalar_dense.*_ItemInForward") as e:
        trace_step(_ItemInForward(), torch.randn(2, 4), device="meta")
    assert "trace_device='cpu'" in e.value.fix
    # device="auto" (the default) then runs a real step on a CPU copy
    model = _ItemInForward()
    w = model.lin.weight.detach().clone()
    t = trace_step(model, torch.randn(2, 4))
    assert t.meta["trace_device"] == "cpu" and "_local_scalar_dense" in t.meta["retraced_on_cpu"]
    assert {"forward", "backward", "optimizer"} <= {k.phase for k in t.kernels}
    assert torch.equal(model.lin.weight, w)          # the user's model is untouched


def test_failing_step_names_op_and_module():
    bad = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(6, 2))
    with pytest.raises(TraceError, match=r"forward phase at op aten::addmm in module '1'"):
        trace_step(bad, torch.randn(2, 4))


def test_bad_inputs():
    with pytest.raises(TraceError, match="unknown model preset 'gpt-9b'.*") as e:
        trace_preset("gpt-9b")
    assert "gpt-1.3b" in e.value.fix
    with pytest.raises(TraceError, match="no setting"):
        trace_preset("gpt-tiny", channels=3)
    with pytest.raises(TraceError, match="not divisible"):
        trace_preset("gpt-tiny", heads=5)
    with pytest.raises(TraceError, match="nn.Module"):
        trace_step(lambda x: x, torch.randn(2))
    with pytest.raises(TraceError, match="launched no device kernels"):
        trace_step(torch.nn.Identity(), torch.tensor(1.0), loss_fn=lambda y: y,
                   optimizer_factory=False)
    with pytest.raises(FormatError, match="empty"):
        KernelTrace([]).validate()


class _Checkpointed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 8))
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint  # noqa: PLC0415

        return self.b(checkpoint(self.a, x, use_reentrant=False))


def test_activation_checkpointing_recompute_is_backward_work_of_its_module():
    t = trace_step(_Checkpointed(), torch.randn(4, 8))
    recomputed = [k.module for k in t.kernels if k.phase == "backward" and k.op == "aten::gelu"]
    assert recomputed == ["a.1"]
    # recomputation stops once gelu's output (what a.2's backward needs) exists
    assert [k.module for k in t.kernels if k.phase == "backward" and k.op == "aten::addmm"] \
        == ["a.0"]
