"""A tiny Megatron-style tensor-parallel transformer block for the distributed tests.

Its collectives are functional (``torch.distributed._functional_collectives``), so the overlap
pass can move them; attention heads and MLP columns are split over ``tp`` ranks.
"""

from __future__ import annotations

import torch
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F

WORLD = 2


class CopyToTP(torch.autograd.Function):
    """Megatron's f: identity forward, all-reduce of the input gradient backward."""

    @staticmethod
    def forward(ctx, x, group_name):
        ctx.group_name = group_name
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return funcol.all_reduce(grad, "sum", ctx.group_name), None


class ReduceFromTP(torch.autograd.Function):
    """Megatron's g: all-reduce of the partial sums forward, identity backward."""

    @staticmethod
    def forward(ctx, x, group_name):
        return funcol.all_reduce(x, "sum", group_name)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class TPBlock(torch.nn.Module):
    """A pre-norm transformer block, attention heads and MLP columns split over the ranks."""

    def __init__(self, group_name: str, hidden=16, heads=4, tp=WORLD):
        super().__init__()
        self.group_name = group_name
        self.local_heads, self.head_dim = heads // tp, hidden // heads
        local = self.local_heads * self.head_dim
        self.ln1 = torch.nn.LayerNorm(hidden)
        self.qkv = torch.nn.Linear(hidden, 3 * local)           # column-parallel shard
        self.proj = torch.nn.Linear(local, hidden, bias=False)  # row-parallel shard
        self.ln2 = torch.nn.LayerNorm(hidden)
        self.fc1 = torch.nn.Linear(hidden, 2 * hidden // tp)
        self.fc2 = torch.nn.Linear(2 * hidden // tp, hidden, bias=False)

    def forward(self, x):
        b, s, _ = x.shape
        h = CopyToTP.apply(self.ln1(x), self.group_name)
        q, k, v = self.qkv(h).view(b, s, 3, self.local_heads, self.head_dim).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        a = a.transpose(1, 2).reshape(b, s, -1)
        x = x + ReduceFromTP.apply(self.proj(a), self.group_name)
        h = CopyToTP.apply(self.ln2(x), self.group_name)
        return x + ReduceFromTP.apply(self.fc2(F.gelu(self.fc1(h))), self.group_name)
