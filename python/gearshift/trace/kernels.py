"""How framework ops become device kernels: which ops launch none, which launch several.

Torch-free on purpose: the op-level tracer, the CUPTI reader and the docs share these tables.
The op-level tracer emits one record per kernel an op would launch on a CUDA device. Most aten
ops launch exactly one; the exceptions the tracer knows are listed here (docs/tracing.md explains
where a real CUPTI trace still differs).
"""

from __future__ import annotations

import math
import re

# Ops that only change metadata or allocate: no kernel on the device. View ops are detected from
# their schema by the tracer; these are the non-view ones.
NO_KERNEL_OPS = frozenset({
    "aten::_unsafe_view", "aten::detach", "aten::alias", "aten::lift_fresh",
    "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty",
    "aten::new_empty_strided", "aten::_local_scalar_dense",  # a D2H memcpy, not a kernel
    "aten::resize_", "aten::set_", "aten::_reshape_alias", "aten::is_same_size",
    "aten::_has_compatible_shallow_copy_type", "aten::record_stream",
    "_c10d_functional::wait_tensor",  # a stream wait, not a kernel
})

# Ops that launch a fixed sequence of kernels on CUDA: (suffix, share of the op's FLOPs and bytes).
# Shares are a rough split so the op's totals are kept; the kernel count is what matters most,
# because the runtime switches clocks at launch ordinals.
MULTI_KERNEL_OPS: dict[str, tuple[tuple[str, float], ...]] = {
    # layer_norm_backward_cuda: one kernel for dX, one (GammaBetaBackward) for dgamma/dbeta
    "aten::native_layer_norm_backward": (("dx", 0.5), ("dgamma_dbeta", 0.5)),
    # batch_norm_cuda in training: statistics, then the normalising elementwise kernel
    "aten::native_batch_norm": (("stats", 0.5), ("elementwise", 0.5)),
    "aten::_native_batch_norm_legit": (("stats", 0.5), ("elementwise", 0.5)),
    "aten::_native_batch_norm_legit_functional": (("stats", 0.5), ("elementwise", 0.5)),
    "aten::native_batch_norm_backward": (("reduce", 0.5), ("elementwise", 0.5)),
    # flash-attention backward: dot(dO, O) preprocessing, the main kernel, dQ conversion
    "aten::_scaled_dot_product_flash_attention_backward": (
        ("preprocess", 0.05), ("main", 0.9), ("convert_dq", 0.05)),
    "aten::_flash_attention_backward": (("preprocess", 0.05), ("main", 0.9), ("convert_dq", 0.05)),
    # embedding_dense_backward_cuda: sort indices, segment offsets, partial sums, final sums
    "aten::embedding_dense_backward": (
        ("sort", 0.25), ("segment_offsets", 0.05), ("partial_sums", 0.5), ("sum", 0.2)),
}

# convolution_backward launches one kernel per requested gradient (output_mask).
CONV_BACKWARD_PARTS = (("dgrad", 0.5), ("wgrad", 0.5), ("bgrad", 0.0))

# multi_tensor_apply (ATen/native/cuda/MultiTensorApply.cuh): a _foreach_* op launches a kernel
# whenever its tensor list or its block list is full.
FOREACH_CHUNK_ELEMENTS = 65536
FOREACH_MAX_BLOCKS = 320
FOREACH_MAX_TENSORS = (110, 64, 48, 36, 30)  # by depth = number of tensor lists


def foreach_launches(numels: list[int], depth: int) -> int:
    """Kernels multi_tensor_apply launches for tensors of these sizes and this list depth."""
    if not numels:
        return 0
    max_tensors = FOREACH_MAX_TENSORS[min(max(depth, 1), len(FOREACH_MAX_TENSORS)) - 1]
    launches = loc_tensor = loc_block = 0
    for i, n in enumerate(numels):
        chunks = max(1, math.ceil(n / FOREACH_CHUNK_ELEMENTS))
        loc_tensor += 1
        last_tensor = i == len(numels) - 1
        while chunks:
            take = min(chunks, FOREACH_MAX_BLOCKS - loc_block)
            chunks -= take
            loc_block += take
            tensors_full = loc_tensor == max_tensors and chunks == 0
            blocks_full = loc_block == FOREACH_MAX_BLOCKS
            if tensors_full or blocks_full or (last_tensor and chunks == 0):
                launches += 1
                loc_block = 0
                loc_tensor = 0 if chunks == 0 else 1  # a tensor split across launches carries on
    return launches


# torch.distributed ops recorded as communication kernels, by (namespace::name) -> comm_op.
COMM_OPS = {
    "all_gather_into_tensor": "all_gather", "all_gather_into_tensor_coalesced": "all_gather",
    "all_gather_into_tensor_out": "all_gather", "allgather_": "all_gather",
    "_allgather_base_": "all_gather", "allgather_into_tensor_coalesced_": "all_gather",
    "reduce_scatter_tensor": "reduce_scatter", "reduce_scatter_tensor_coalesced": "reduce_scatter",
    "reduce_scatter_": "reduce_scatter", "_reduce_scatter_base_": "reduce_scatter",
    "all_reduce": "all_reduce", "all_reduce_": "all_reduce", "all_reduce_coalesced": "all_reduce",
    "allreduce_": "all_reduce", "allreduce_coalesced_": "all_reduce",
    "all_to_all_single": "all_to_all", "alltoall_": "all_to_all", "alltoall_base_": "all_to_all",
    "broadcast": "broadcast", "broadcast_": "broadcast", "reduce_": "reduce",
    "send": "p2p", "recv_": "p2p", "recv_any_source_": "p2p",
}
COMM_NAMESPACES = ("_c10d_functional", "_c10d_functional_autograd", "c10d", "c10d_functional")

# NCCL kernel names (CUPTI) -> comm_op, matched on the name's prefix after "ncclDevKernel_"/
# "ncclKernel_".
NCCL_KERNELS = (("AllGather", "all_gather"), ("ReduceScatter", "reduce_scatter"),
                ("AllReduce", "all_reduce"), ("Broadcast", "broadcast"), ("Reduce", "reduce"),
                ("SendRecv", "p2p"), ("Send", "p2p"), ("Recv", "p2p"), ("AllToAll", "all_to_all"))


_MANGLED_HEAD = re.compile(r"_Z(\d+)")


def _unmangled_head(kernel_name: str) -> str:
    """A top-level function's own name from its Itanium-mangled symbol (``_Z<len><name>...``),
    else the name as given. CUPTI's launch callbacks name kernels by their mangled symbol
    (``_Z38ncclDevKernel_AllReduce_Sum_f32_RING_LL24ncclDevKernelArgsStorageILm4096EE`` on a
    GPU), torch.profiler and the fake GPU by the demangled one."""
    m = _MANGLED_HEAD.match(kernel_name)
    if m is None:
        return kernel_name
    n = int(m.group(1))
    return kernel_name[m.end():m.end() + n]


def nccl_comm_op(kernel_name: str) -> str | None:
    """comm_op of an NCCL kernel name (plain or mangled), or None when it is not an NCCL
    kernel."""
    kernel_name = _unmangled_head(kernel_name)
    for prefix in ("ncclDevKernel_", "ncclKernel_"):
        if kernel_name.startswith(prefix):
            rest = kernel_name[len(prefix):]
            for key, op in NCCL_KERNELS:
                if rest.startswith(key):
                    return op
            return "other"
    return None
