"""Synthetic kernel traces of transformer layer stacks, for calibration and demos.

A Megatron-style GPT layer with tensor parallelism ``tp``: every GEMM with its FLOPs and the
bytes it reads and writes (BF16), the element-wise kernels with their bytes, and the two
tensor-parallel all-reduces per layer and direction. Backward runs a data-gradient and a
weight-gradient GEMM per forward GEMM.
"""

from __future__ import annotations

from ...model import KernelRecord, KernelTrace

BF16 = 2


def _gemm(name, m, n, k, phase, module):
    reads = (m * k + k * n) * BF16
    return KernelRecord(name=name, kind="compute", phase=phase, module=module, op="aten::mm",
                        flops=2.0 * m * n * k, bytes_read=float(reads),
                        bytes_written=float(m * n * BF16))


def _elementwise(name, elems, phase, module, reads=1.0, writes=1.0):
    return KernelRecord(name=name, kind="compute", phase=phase, module=module,
                        op="aten::elementwise", flops=float(4 * elems),
                        bytes_read=float(reads * elems * BF16),
                        bytes_written=float(writes * elems * BF16))


def _allreduce(name, elems, phase, module):
    return KernelRecord(name=name, kind="comm", phase=phase, module=module, op="c10d::all_reduce",
                        comm_op="all_reduce", comm_bytes=float(elems * BF16))


def gpt_layer_kernels(layer: int, hidden: int, heads: int, seq: int, micro_batch: int, tp: int,
                      phase: str, elementwise_scale: float = 1.0) -> list[KernelRecord]:
    h, s, b = hidden, seq, micro_batch
    t = b * s                   # tokens
    hp = h // tp                # this rank's share of the hidden dimension
    nh = max(heads // tp, 1)
    mod = f"layers.{layer}"
    ew = elementwise_scale
    if phase == "forward":
        return [
            _elementwise("layernorm_fwd", t * h * ew, phase, mod + ".ln1", 1.0, 1.0),
            _gemm("gemm_qkv", t, 3 * hp, h, phase, mod + ".attn.qkv"),
            KernelRecord(name="bgemm_scores", phase=phase, module=mod + ".attn",
                         op="aten::bmm", flops=2.0 * b * nh * s * s * (h // heads),
                         bytes_read=float(2 * t * hp * BF16),
                         bytes_written=float(b * nh * s * s * BF16)),
            _elementwise("softmax_fwd", b * nh * s * s * ew, phase, mod + ".attn", 1.0, 1.5),
            KernelRecord(name="bgemm_context", phase=phase, module=mod + ".attn",
                         op="aten::bmm", flops=2.0 * b * nh * s * s * (h // heads),
                         bytes_read=float((b * nh * s * s + t * hp) * BF16),
                         bytes_written=float(t * hp * BF16)),
            _gemm("gemm_proj", t, h, hp, phase, mod + ".attn.proj"),
            _allreduce("allreduce_attn", t * h, phase, mod + ".attn"),
            _elementwise("dropout_add_fwd", t * h * ew, phase, mod, 2.0, 1.5),
            _elementwise("layernorm_fwd", t * h * ew, phase, mod + ".ln2", 1.0, 1.0),
            _gemm("gemm_fc1", t, 4 * hp, h, phase, mod + ".mlp.fc1"),
            _elementwise("gelu_fwd", 4 * t * hp * ew, phase, mod + ".mlp", 1.0, 1.0),
            _gemm("gemm_fc2", t, h, 4 * hp, phase, mod + ".mlp.fc2"),
            _allreduce("allreduce_mlp", t * h, phase, mod + ".mlp"),
            _elementwise("dropout_add_fwd", t * h * ew, phase, mod, 2.0, 1.5),
        ]
    ks = [
        _elementwise("dropout_add_bwd", t * h * ew, phase, mod, 1.5, 1.0),
        _gemm("gemm_fc2_dgrad", t, 4 * hp, h, phase, mod + ".mlp.fc2"),
        _gemm("gemm_fc2_wgrad", 4 * hp, h, t, phase, mod + ".mlp.fc2"),
        _elementwise("gelu_bwd", 4 * t * hp * ew, phase, mod + ".mlp", 2.0, 1.0),
        _gemm("gemm_fc1_dgrad", t, h, 4 * hp, phase, mod + ".mlp.fc1"),
        _gemm("gemm_fc1_wgrad", h, 4 * hp, t, phase, mod + ".mlp.fc1"),
        _allreduce("allreduce_mlp_bwd", t * h, phase, mod + ".mlp"),
        _elementwise("layernorm_bwd", t * h * ew, phase, mod + ".ln2", 3.0, 1.0),
        _elementwise("dropout_add_bwd", t * h * ew, phase, mod, 1.5, 1.0),
        _gemm("gemm_proj_dgrad", t, hp, h, phase, mod + ".attn.proj"),
        _gemm("gemm_proj_wgrad", hp, h, t, phase, mod + ".attn.proj"),
        KernelRecord(name="bgemm_context_bwd", phase=phase, module=mod + ".attn", op="aten::bmm",
                     flops=4.0 * b * nh * s * s * (h // heads),
                     bytes_read=float((b * nh * s * s + 2 * t * hp) * BF16),
                     bytes_written=float((b * nh * s * s + t * hp) * BF16)),
        _elementwise("softmax_bwd", b * nh * s * s * ew, phase, mod + ".attn", 2.5, 1.0),
        KernelRecord(name="bgemm_scores_bwd", phase=phase, module=mod + ".attn", op="aten::bmm",
                     flops=4.0 * b * nh * s * s * (h // heads),
                     bytes_read=float((b * nh * s * s + 2 * t * hp) * BF16),
                     bytes_written=float(2 * t * hp * BF16)),
        _gemm("gemm_qkv_dgrad", t, h, 3 * hp, phase, mod + ".attn.qkv"),
        _gemm("gemm_qkv_wgrad", h, 3 * hp, t, phase, mod + ".attn.qkv"),
        _allreduce("allreduce_attn_bwd", t * h, phase, mod + ".attn"),
        _elementwise("layernorm_bwd", t * h * ew, phase, mod + ".ln1", 3.0, 1.0),
    ]
    return ks


def gpt_stack_trace(layers: int = 4, hidden: int = 12288, heads: int = 96, seq: int = 2048,
                    micro_batch: int = 1, tp: int = 8, phases=("forward", "backward"),
                    elementwise_scale: float = 1.0, model: str = "gpt3-like") -> KernelTrace:
    """One microbatch through ``layers`` GPT layers on one tensor-parallel rank."""
    kernels: list[KernelRecord] = []
    for phase in phases:
        order = range(layers) if phase == "forward" else reversed(range(layers))
        for layer in order:
            kernels += gpt_layer_kernels(layer, hidden, heads, seq, micro_batch, tp, phase,
                                         elementwise_scale)
    if tp <= 1:
        kernels = [k for k in kernels if k.kind != "comm"]
    # a layer's kernels form a chain (each reads what the one before it wrote): conservative for
    # the weight-gradient GEMMs, exact for the rest, and enough that no collective overlaps
    # its own consumer
    for i, k in enumerate(kernels):
        k.deps = (i - 1,) if i else ()
    return KernelTrace(kernels=kernels, model=model, source="synthetic", device="meta",
                       meta={"world_size": tp, "tp": tp, "layers": layers, "hidden": hidden,
                             "seq": seq, "micro_batch": micro_batch})
