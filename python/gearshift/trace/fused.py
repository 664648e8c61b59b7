"""Fused kernels Megatron / Transformer Engine run where PyTorch's eager ops would launch many:
RMSNorm, rotary embedding and SwiGLU, each one kernel forward and one backward.

They are ``torch.library`` custom ops (namespace ``gearshift_fused``) with fake (meta)
implementations and autograd formulas, so the op-level tracer records one kernel per call
(memory-bound: it counts their bytes, not FLOPs) where the unfused ops would have recorded
five to eight. On a real device they compute the same values as the unfused ops.
"""

from __future__ import annotations

import torch
from torch.library import custom_op

NAMESPACE = "gearshift_fused"


def _f32(t: torch.Tensor) -> torch.Tensor:
    """At least fp32, as the fused kernels compute (fp64 stays fp64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def _rotate_half_t(x):          # the transpose of _rotate_half: (v1, v2) -> (v2, -v1)
    a, b = x.chunk(2, dim=-1)
    return torch.cat((b, -a), dim=-1)


# --- RMSNorm -------------------------------------------------------------------------------------
@custom_op(f"{NAMESPACE}::rms_norm", mutates_args=())
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    xf = _f32(x)
    r = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * r * _f32(weight)).to(x.dtype), r


@rms_norm.register_fake
def _(x, weight, eps):
    return torch.empty_like(x), x.new_empty(x.shape[:-1] + (1,),
                                            dtype=torch.promote_types(x.dtype, torch.float32))


@custom_op(f"{NAMESPACE}::rms_norm_backward", mutates_args=())
def rms_norm_backward(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                      r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xf, gw = _f32(x), _f32(g) * _f32(weight)
    dx = r * (gw - xf * r.pow(2) * (gw * xf).mean(-1, keepdim=True))
    dw = (_f32(g) * xf * r).reshape(-1, x.shape[-1]).sum(0)
    return dx.to(x.dtype), dw.to(weight.dtype)


@rms_norm_backward.register_fake
def _(g, x, weight, r):
    return torch.empty_like(x), torch.empty_like(weight)


def _rms_setup(ctx, inputs, output):
    x, weight, _eps = inputs
    ctx.save_for_backward(x, weight, output[1])
    ctx.set_materialize_grads(False)


def _rms_backward(ctx, g, _gr):
    if g is None:                    # only the (internal) inverse RMS was used
        return None, None, None
    x, weight, r = ctx.saved_tensors
    dx, dw = rms_norm_backward(g, x, weight, r)
    return dx, dw, None


rms_norm.register_autograd(_rms_backward, setup_context=_rms_setup)


# --- rotary embedding ----------------------------------------------------------------------------
@custom_op(f"{NAMESPACE}::rope", mutates_args=())
def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


@rope.register_fake
def _(x, cos, sin):
    return torch.empty_like(x)


@custom_op(f"{NAMESPACE}::rope_backward", mutates_args=())
def rope_backward(g: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return (g * cos + _rotate_half_t(g * sin)).to(g.dtype)


@rope_backward.register_fake
def _(g, cos, sin):
    return torch.empty_like(g)


def _rope_setup(ctx, inputs, output):
    _x, cos, sin = inputs
    ctx.save_for_backward(cos, sin)


def _rope_backward(ctx, g):
    cos, sin = ctx.saved_tensors
    return rope_backward(g, cos, sin), None, None


rope.register_autograd(_rope_backward, setup_context=_rope_setup)


# --- SwiGLU --------------------------------------------------------------------------------------
@custom_op(f"{NAMESPACE}::swiglu", mutates_args=())
def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up


@swiglu.register_fake
def _(gate_up):
    return gate_up.new_empty(gate_up.shape[:-1] + (gate_up.shape[-1] // 2,))


@custom_op(f"{NAMESPACE}::swiglu_backward", mutates_args=())
def swiglu_backward(g: torch.Tensor, gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = _f32(gate_up).chunk(2, dim=-1)
    s = torch.sigmoid(gate)
    d_gate = _f32(g) * up * (s * (1 + gate * (1 - s)))
    d_up = _f32(g) * gate * s
    return torch.cat((d_gate, d_up), dim=-1).to(gate_up.dtype)


@swiglu_backward.register_fake
def _(g, gate_up):
    return torch.empty_like(gate_up)


def _swiglu_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _swiglu_backward(ctx, g):
    (gate_up,) = ctx.saved_tensors
    return swiglu_backward(g, gate_up)


swiglu.register_autograd(_swiglu_backward, setup_context=_swiglu_setup)


class FusedRMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)[0]
