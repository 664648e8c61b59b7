"""A small model zoo for demos and tests: GPT-style decoders, Llama/Qwen3-style decoders
(grouped-query attention, SwiGLU, RMSNorm, rotary embeddings) and a ResNet-50-like CNN.

Defined here, no downloads. Built on the meta device, a preset of any size costs no memory.
``gpt-*-tp4`` presets shard attention and MLP Megatron-style over 4 ranks with sequence
parallelism, so their trace holds all-gather and reduce-scatter kernels; the collectives are the
real ``_c10d_functional`` ops, whose meta kernels need no process group. The ``-tp8`` Llama and
Qwen3 presets use Megatron's tensor parallelism without sequence parallelism (as Kareus runs
them): an all-reduce after each row-parallel projection in the forward pass and one of the
input gradient before each column-parallel projection in the backward pass. Their shapes are
the published Hugging Face configs (``llama_config_from_hf`` reads such a config.json).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TraceError


@dataclass(frozen=True)
class GPTConfig:
    layers: int = 12
    hidden: int = 768
    heads: int = 12
    seq: int = 1024
    batch: int = 8
    vocab: int = 50304
    mlp_ratio: int = 4
    tp: int = 1                  # tensor-parallel degree (collectives appear when > 1)
    dtype: str = "bfloat16"

    def check(self) -> "GPTConfig":
        problems = []
        if self.hidden % self.heads:
            problems.append(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.tp > 1 and (self.heads % self.tp or self.seq % self.tp):
            problems.append(f"heads {self.heads} and seq {self.seq} must be divisible by tp "
                            f"{self.tp}")
        if min(self.layers, self.hidden, self.heads, self.seq, self.batch, self.tp) < 1:
            problems.append("every size must be >= 1")
        if problems:
            raise TraceError("invalid GPT configuration: " + "; ".join(problems),
                             "pick sizes that divide evenly")
        return self


@dataclass(frozen=True)
class LlamaConfig:
    """A Llama-family decoder (Llama 3, Qwen3): GQA, SwiGLU MLP, RMSNorm, rotary embeddings."""

    layers: int = 28
    hidden: int = 3072
    heads: int = 24
    kv_heads: int = 8
    head_dim: int = 128
    intermediate: int = 8192
    vocab: int = 128256
    seq: int = 4096
    batch: int = 4
    tp: int = 1
    qk_norm: bool = False         # Qwen3: RMSNorm over each head's queries and keys
    tie_embeddings: bool = True
    rms_eps: float = 1e-5
    rope_theta: float = 500000.0
    family: str = "llama"
    dtype: str = "bfloat16"
    # RMSNorm, rotary embedding and SwiGLU as one kernel each (trace/fused.py), as Megatron /
    # Transformer Engine run them; False: PyTorch's eager ops (five to eight kernels each)
    fused: bool = True
    # the pipeline stage this config is (``layers`` are the stage's): "all" (no pipeline), or
    # "first" (embedding + layers), "middle" (layers), "last" (layers + final norm, LM head and
    # loss); a stage that does not start the model takes the previous stage's activation and
    # returns its gradient, one that does not end it receives its output's gradient
    pp_stage: str = "all"

    def check(self) -> "LlamaConfig":
        problems = []
        if self.heads % self.kv_heads:
            problems.append(f"heads {self.heads} is not a multiple of kv_heads {self.kv_heads}")
        if self.tp > 1:
            for what, n in (("heads", self.heads), ("kv_heads", self.kv_heads),
                            ("intermediate", self.intermediate), ("vocab", self.vocab)):
                if n % self.tp:
                    problems.append(f"{what} {n} is not divisible by tp {self.tp}")
        if min(self.layers, self.hidden, self.heads, self.kv_heads, self.head_dim,
               self.intermediate, self.seq, self.batch, self.tp) < 1:
            problems.append("every size must be >= 1")
        if self.pp_stage not in PP_STAGES:
            problems.append(f"pp_stage {self.pp_stage!r} is not one of {', '.join(PP_STAGES)}")
        if problems:
            raise TraceError("invalid Llama configuration: " + "; ".join(problems),
                             "pick sizes that divide evenly")
        return self


PP_STAGES = ("all", "first", "middle", "last")


@dataclass(frozen=True)
class ResNetConfig:
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    batch: int = 32
    image: int = 224
    classes: int = 1000
    dtype: str = "bfloat16"


GPT_PRESETS = {
    "gpt-tiny": GPTConfig(layers=2, hidden=64, heads=4, seq=32, batch=2, vocab=512),
    "gpt-125m": GPTConfig(layers=12, hidden=768, heads=12, seq=1024, batch=8),
    "gpt-350m": GPTConfig(layers=24, hidden=1024, heads=16, seq=1024, batch=8),
    "gpt-760m": GPTConfig(layers=24, hidden=1536, heads=16, seq=2048, batch=8),
    "gpt-1.3b": GPTConfig(layers=24, hidden=2048, heads=16, seq=2048, batch=8),
    "gpt-2.7b": GPTConfig(layers=32, hidden=2560, heads=32, seq=2048, batch=8),
    "gpt-6.7b": GPTConfig(layers=32, hidden=4096, heads=32, seq=2048, batch=4),
    "gpt-13b": GPTConfig(layers=40, hidden=5120, heads=40, seq=2048, batch=4),
    "gpt-tiny-tp2": GPTConfig(layers=2, hidden=64, heads=4, seq=32, batch=2, vocab=512, tp=2),
    "gpt-1.3b-tp4": GPTConfig(layers=24, hidden=2048, heads=16, seq=2048, batch=8, tp=4),
    "gpt-6.7b-tp4": GPTConfig(layers=32, hidden=4096, heads=32, seq=2048, batch=4, tp=4),
}
# Published Hugging Face configs: meta-llama/Llama-3.2-3B and Qwen/Qwen3-1.7B (config.json).
# Sequence 4096 and microbatch 4 (split into two nanobatches of 2) as in Kareus's measurements.
LLAMA_3_2_3B = LlamaConfig(layers=28, hidden=3072, heads=24, kv_heads=8, head_dim=128,
                           intermediate=8192, vocab=128256, rms_eps=1e-5, rope_theta=500000.0,
                           family="llama")
QWEN3_1_7B = LlamaConfig(layers=28, hidden=2048, heads=16, kv_heads=8, head_dim=128,
                         intermediate=6144, vocab=151936, qk_norm=True, rms_eps=1e-6,
                         rope_theta=1000000.0, family="qwen3")
LLAMA_PRESETS = {
    "llama-3.2-3b": LLAMA_3_2_3B,
    "llama-3.2-3b-tp8": dataclasses.replace(LLAMA_3_2_3B, tp=8),
    "qwen3-1.7b": QWEN3_1_7B,
    "qwen3-1.7b-tp8": dataclasses.replace(QWEN3_1_7B, tp=8),
    "llama-tiny-tp2": LlamaConfig(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16,
                                  intermediate=128, vocab=512, seq=32, batch=4, tp=2),
}
HF_FAMILIES = {"llama": False, "qwen3": True}   # model_type -> qk_norm


def llama_config_from_hf(cfg: dict, **sizes) -> LlamaConfig:
    """A LlamaConfig from a Hugging Face config.json (model_type llama or qwen3); ``sizes``
    set what a config does not hold (seq=, batch=, tp=) or override it (layers=)."""
    kind = cfg.get("model_type")
    if kind not in HF_FAMILIES:
        raise TraceError(f"config.json has model_type {kind!r}; --hf-config reads "
                         f"{', '.join(HF_FAMILIES)}", "pass the config of a Llama or Qwen3 model")
    missing = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads", "vocab_size") if k not in cfg]
    if missing:
        raise TraceError(f"config.json lacks {', '.join(missing)}",
                         "pass the model's full config.json from its Hugging Face repository")
    heads = int(cfg["num_attention_heads"])
    base = LlamaConfig(
        layers=int(cfg["num_hidden_layers"]), hidden=int(cfg["hidden_size"]), heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads),
        intermediate=int(cfg["intermediate_size"]), vocab=int(cfg["vocab_size"]),
        qk_norm=HF_FAMILIES[kind], tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        rms_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        rope_theta=float(cfg.get("rope_theta", 10000.0)), family=kind)
    sizes = {k: v for k, v in sizes.items() if v is not None}
    return dataclasses.replace(base, **sizes).check()


RESNET_PRESETS = {
    "resnet-tiny": ResNetConfig(blocks=(1, 1, 1, 1), width=8, batch=2, image=32, classes=10),
    "resnet50": ResNetConfig(),
}


def presets() -> list[str]:
    return list(GPT_PRESETS) + list(LLAMA_PRESETS) + list(RESNET_PRESETS)


# --- tensor-parallel collectives (sequence parallel, sequence-first layout [T, B, H]) -----------

def _all_gather(x: torch.Tensor, tp: int) -> torch.Tensor:
    y = torch.ops._c10d_functional_autograd.all_gather_into_tensor(x, tp, "tp")
    return torch.ops._c10d_functional.wait_tensor(y)


def _reduce_scatter(x: torch.Tensor, tp: int) -> torch.Tensor:
    y = torch.ops._c10d_functional_autograd.reduce_scatter_tensor(x, "sum", tp, "tp")
    return torch.ops._c10d_functional.wait_tensor(y)


# --- GPT ------------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.tp = cfg.tp
        self.heads = cfg.heads // cfg.tp
        self.local = cfg.hidden // cfg.tp
        self.qkv = nn.Linear(cfg.hidden, 3 * self.local)
        self.proj = nn.Linear(self.local, cfg.hidden)

    def forward(self, x):                       # x: [T/tp, B, H]
        if self.tp > 1:
            x = _all_gather(x, self.tp)
        t, b, _ = x.shape
        q, k, v = self.qkv(x).split(self.local, dim=-1)
        q, k, v = (z.reshape(t, b, self.heads, -1).permute(1, 2, 0, 3) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = self.proj(y.permute(2, 0, 1, 3).reshape(t, b, self.local))
        return _reduce_scatter(y, self.tp) if self.tp > 1 else y


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.tp = cfg.tp
        inner = cfg.mlp_ratio * cfg.hidden // cfg.tp
        self.fc = nn.Linear(cfg.hidden, inner)
        self.act = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(inner, cfg.hidden)

    def forward(self, x):
        if self.tp > 1:
            x = _all_gather(x, self.tp)
        y = self.proj(self.act(self.fc(x)))
        return _reduce_scatter(y, self.tp) if self.tp > 1 else y


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.hidden)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.hidden)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2/3-style pre-norm decoder with tied embeddings."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg.check()
        self.wte = nn.Embedding(cfg.vocab, cfg.hidden)
        self.wpe = nn.Embedding(cfg.seq, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):                      # idx: [B, T] token ids
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = (self.wte(idx) + self.wpe(pos)).transpose(0, 1)   # [T, B, H]
        tp = self.cfg.tp
        if tp > 1:  # sequence parallel: each rank keeps its slice of the sequence
            x = x[: t // tp]
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if tp > 1:
            x = _all_gather(x, tp)
        return self.lm_head(x)                   # [T, B, vocab]


class _ToNextStage(torch.autograd.Function):
    """A stage that does not end the model: its output goes to the next stage (a pipeline
    send, which the pipeline executor models) and the gradient that stage sends back arrives
    in a receive buffer. Neither launches a compute kernel on this stage (empty tensors)."""

    @staticmethod
    def forward(ctx, x):
        ctx.out = x.detach()          # for its shape and placement only
        return torch.empty((), dtype=torch.float32, device=x.device)

    @staticmethod
    def backward(ctx, g):
        return torch.empty_like(ctx.out)


def gpt_loss(targets: torch.Tensor):
    """Cross entropy of [T, B, vocab] logits against [B, T] targets, in fp32 as usual."""
    def loss(logits):
        return F.cross_entropy(logits.float().flatten(0, 1), targets.transpose(0, 1).flatten())
    return loss


# --- Llama / Qwen3 (Megatron tensor parallelism, no sequence parallelism) ----------------------

def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    y = torch.ops._c10d_functional.all_reduce(x, "sum", "tp")
    return torch.ops._c10d_functional.wait_tensor(y)


class _CopyToTP(torch.autograd.Function):
    """Megatron's f: identity forward, all-reduce of the input gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return _all_reduce(g)


class _ReduceFromTP(torch.autograd.Function):
    """Megatron's g: all-reduce forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return _all_reduce(x)

    @staticmethod
    def backward(ctx, g):
        return g


def _rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def _rms_norm(cfg: "LlamaConfig", dim: int) -> nn.Module:
    if cfg.fused:
        from .fused import FusedRMSNorm  # noqa: PLC0415

        return FusedRMSNorm(dim, cfg.rms_eps)
    return nn.RMSNorm(dim, eps=cfg.rms_eps)


class LlamaAttention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.tp = cfg.tp
        self.heads = cfg.heads // cfg.tp
        self.kv_heads = cfg.kv_heads // cfg.tp
        self.head_dim = cfg.head_dim
        self.qkv = nn.Linear(cfg.hidden, (self.heads + 2 * self.kv_heads) * cfg.head_dim,
                             bias=False)
        self.o_proj = nn.Linear(self.heads * cfg.head_dim, cfg.hidden, bias=False)
        self.q_norm = _rms_norm(cfg, cfg.head_dim) if cfg.qk_norm else None
        self.k_norm = _rms_norm(cfg, cfg.head_dim) if cfg.qk_norm else None
        self.fused = cfg.fused

    def forward(self, x, cos, sin):             # x: [T, B, H], full sequence on every rank
        if self.tp > 1:
            x = _CopyToTP.apply(x)
        t, b, _ = x.shape
        d = self.head_dim
        q, k, v = self.qkv(x).split([self.heads * d, self.kv_heads * d, self.kv_heads * d], -1)
        q = q.reshape(t, b, self.heads, d)
        k = k.reshape(t, b, self.kv_heads, d)
        v = v.reshape(t, b, self.kv_heads, d)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.fused:
            from .fused import rope  # noqa: PLC0415

            q, k = rope(q, cos, sin), rope(k, cos, sin)
        else:
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
        q, k, v = (z.permute(1, 2, 0, 3) for z in (q, k, v))       # [B, heads, T, d]
        rep = self.heads // self.kv_heads
        if rep > 1:                                                 # GQA: share K/V heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = self.o_proj(y.permute(2, 0, 1, 3).reshape(t, b, self.heads * d))
        return _ReduceFromTP.apply(y) if self.tp > 1 else y


class SwiGLU(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.tp = cfg.tp
        inner = cfg.intermediate // cfg.tp
        self.gate_up = nn.Linear(cfg.hidden, 2 * inner, bias=False)
        self.down = nn.Linear(inner, cfg.hidden, bias=False)
        self.fused = cfg.fused

    def forward(self, x):
        if self.tp > 1:
            x = _CopyToTP.apply(x)
        if self.fused:
            from .fused import swiglu  # noqa: PLC0415

            y = self.down(swiglu(self.gate_up(x)))
        else:
            gate, up = self.gate_up(x).chunk(2, dim=-1)
            y = self.down(F.silu(gate) * up)
        return _ReduceFromTP.apply(y) if self.tp > 1 else y


class LlamaBlock(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_norm = _rms_norm(cfg, cfg.hidden)
        self.attn = LlamaAttention(cfg)
        self.post_norm = _rms_norm(cfg, cfg.hidden)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.input_norm(x), cos, sin)
        return x + self.mlp(self.post_norm(x))


class Llama(nn.Module):
    """A Llama/Qwen3 decoder; with tp > 1 the embedding and the LM head are vocab-parallel."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg.check()
        starts, ends = cfg.pp_stage in ("all", "first"), cfg.pp_stage in ("all", "last")
        self.embed = nn.Embedding(cfg.vocab // cfg.tp, cfg.hidden) if starts else None
        self.blocks = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.layers))
        self.norm = _rms_norm(cfg, cfg.hidden) if ends else None
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab // cfg.tp, bias=False) if ends else None
        if cfg.tie_embeddings and starts and ends:
            self.lm_head.weight = self.embed.weight
        inv = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)
        ang = torch.outer(torch.arange(cfg.seq).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)[:, None, None, :]       # [T, 1, 1, d]
        self.register_buffer("cos", ang.cos().to(getattr(torch, cfg.dtype)), persistent=False)
        self.register_buffer("sin", ang.sin().to(getattr(torch, cfg.dtype)), persistent=False)

    def forward(self, idx):    # [B, T] token ids (this rank's vocab shard), or [T, B, H] activation
        if self.embed is not None:
            x = self.embed(idx).transpose(0, 1)  # [T, B, H]
            if self.cfg.tp > 1:                  # vocab-parallel embedding: sum the shards
                x = _ReduceFromTP.apply(x)
        else:                                    # the previous pipeline stage's output
            x = idx
        t = x.shape[0]
        cos, sin = self.cos[:t], self.sin[:t]
        for block in self.blocks:
            x = block(x, cos, sin)
        if self.norm is None:                    # sent to the next pipeline stage
            return x
        x = self.norm(x)
        if self.cfg.tp > 1:
            x = _CopyToTP.apply(x)
        return self.lm_head(x)                   # [T, B, vocab / tp]


# --- ResNet-50-like CNN ---------------------------------------------------------------------------

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], w
        for i, n in enumerate(cfg.blocks):
            width = w * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * Bottleneck.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(cin, cfg.classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --- presets -> (module, inputs, loss) ------------------------------------------------------------

def preset_config(name: str, **overrides):
    """The config of a preset with sizes overridden (batch=, seq=, layers=, ...)."""
    base = GPT_PRESETS.get(name) or LLAMA_PRESETS.get(name) or RESNET_PRESETS.get(name)
    if base is None:
        raise TraceError(f"unknown model preset '{name}'",
                         f"use one of: {', '.join(presets())}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(base)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise TraceError(f"preset '{name}' has no setting {', '.join(bad)}",
                         f"its settings are {', '.join(sorted(known))}")
    return dataclasses.replace(base, **overrides)


def build(name: str, device: str = "meta", **overrides):
    """(module, example_inputs, loss_fn, config) for a preset, built on ``device``."""
    return build_config(preset_config(name, **overrides), device)


def build_config(cfg, device: str = "meta"):
    """(module, example_inputs, loss_fn, config) for a config, built on ``device``."""
    dtype = getattr(torch, cfg.dtype)
    with torch.device(device):
        if isinstance(cfg, LlamaConfig):
            model = Llama(cfg.check()).to(dtype)
            vocab = cfg.vocab // cfg.tp
            if cfg.pp_stage in ("all", "first"):
                x = torch.randint(0, vocab, (cfg.batch, cfg.seq))
            else:   # the previous stage's activation; its gradient is sent back to that stage
                x = torch.randn(cfg.seq, cfg.batch, cfg.hidden, dtype=dtype).requires_grad_()
            if cfg.pp_stage in ("all", "last"):
                targets = torch.randint(0, vocab, (cfg.batch, cfg.seq))
                return model, (x,), gpt_loss(targets), cfg
            return model, (x,), _ToNextStage.apply, cfg
        if isinstance(cfg, GPTConfig):
            model = GPT(cfg.check()).to(dtype)
            idx = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq))
            targets = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq))
            return model, (idx,), gpt_loss(targets), cfg
        model = ResNet(cfg).to(dtype)
        images = torch.randn(cfg.batch, 3, cfg.image, cfg.image, dtype=dtype)
        labels = torch.randint(0, cfg.classes, (cfg.batch,))
        return model, (images,), (lambda out: F.cross_entropy(out.float(), labels)), cfg
