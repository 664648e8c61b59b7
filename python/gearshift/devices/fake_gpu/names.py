"""Kernel names, grids and blocks as the CUDA libraries launch them, for the torch ops a step runs.

The fake CUPTI hands the runtime the names a real GPU's launch callbacks carry (cuBLAS GEMMs,
ATen's elementwise/reduction/layer-norm/multi-tensor-apply templates, flash attention, NCCL),
so recorded traces, their signatures and the runtime's per-partition name checks work on the
same strings as on a GPU. The mapping is deterministic: the same op and shapes give the same
name, so signatures are stable across runs.
"""

from __future__ import annotations

import math

# cuBLAS kernel families by GPU generation (names as Nsight shows them)
_GEMM = {
    "hopper": "sm90_xmma_gemm_{d}{d}_{d}{d}_{d}_tn_n_tilesize128x128x64_warpgroupsize1x1x1"
              "_execute_segment_k_off_kernel__5x_cublas",
    "ampere": "ampere_{d}_s16816gemm_{d}_128x128_ldg8_f2f_stages_32x5_tn",
}
_DT = {"f32": "f32", "bf16": "bf16", "f16": "f16", "f64": "f64"}
_ELEMENTWISE = ("void at::native::vectorized_elementwise_kernel<4, at::native::{f}<{t}>, "
                "at::detail::Array<char*, {n}> >(int, at::native::{f}<{t}>, "
                "at::detail::Array<char*, {n}>)")
_REDUCE = ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<{t}, "
           "at::native::func_wrapper_t<{t}, at::native::{f}<{t}, {t}, {t}> >, unsigned int, "
           "{t}, 4> >(at::native::ReduceOp<{t}, at::native::func_wrapper_t<{t}, "
           "at::native::{f}<{t}, {t}, {t}> >, unsigned int, {t}, 4>)")
_FOREACH = ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<"
            "at::native::(anonymous namespace)::TensorListMetadata<{n}>, "
            "at::native::(anonymous namespace)::{f}<{t}, {n}>, {t}>("
            "at::native::(anonymous namespace)::TensorListMetadata<{n}>, "
            "at::native::(anonymous namespace)::{f}<{t}, {n}>, {t})")
_SPECIAL = {
    "aten::native_layer_norm": "void at::native::(anonymous namespace)::"
                               "vectorized_layer_norm_kernel<{t}, float>(int, float, {t} const*, "
                               "{t} const*, {t} const*, float*, float*, {t}*)",
    "aten::native_layer_norm_backward/dx": "void at::native::(anonymous namespace)::"
                                           "layer_norm_grad_input_kernel_vectorized<{t}, float>("
                                           "{t} const*, {t} const*, float const*, float const*, "
                                           "{t} const*, {t}*, int)",
    "aten::native_layer_norm_backward/dgamma_dbeta": "void at::native::(anonymous namespace)::"
                                                     "GammaBetaBackwardCUDAKernelTemplate<{t}, "
                                                     "float, 32u, 32u, 256u, false>(long, long, "
                                                     "{t} const*, {t} const*, float const*, "
                                                     "float const*, {t}*, {t}*)",
    "aten::_softmax": "void (anonymous namespace)::softmax_warp_forward<{t}, {t}, float, 7, "
                      "false, false>({t}*, {t} const*, int, int, int, bool const*, int, bool)",
    "aten::_softmax_backward_data": "void (anonymous namespace)::softmax_warp_backward<{t}, {t}, "
                                    "float, 7, false, false>({t}*, {t} const*, {t} const*, int, "
                                    "int, int, bool const*)",
    "aten::_log_softmax": "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, {t}, "
                          "float, {t}, at::native::(anonymous namespace)::LogSoftMaxForwardEpilogue>"
                          "({t}*, {t} const*, int)",
    "aten::_log_softmax_backward_data": "void at::native::(anonymous namespace)::"
                                        "cunn_SoftMaxBackward<4, {t}, float, {t}, "
                                        "at::native::(anonymous namespace)::"
                                        "LogSoftMaxBackwardEpilogue>({t}*, {t} const*, "
                                        "{t} const*, long)",
    "aten::nll_loss_forward": "void at::native::(anonymous namespace)::nll_loss_forward_reduce_"
                              "cuda_kernel_2d<{t}, float, long>({t}*, {t}*, {t} const*, long "
                              "const*, {t} const*, bool, long, long, long, long)",
    "aten::nll_loss_backward": "void at::native::(anonymous namespace)::nll_loss_backward_reduce_"
                               "cuda_kernel_2d<{t}, long>({t}*, {t} const*, long const*, {t} "
                               "const*, {t} const*, bool, int, int, long, long)",
    "aten::embedding": "void at::native::(anonymous namespace)::indexSelectLargeIndex<{t}, long, "
                       "unsigned int, 2, 2, -2, true>(at::cuda::detail::TensorInfo<{t}, unsigned "
                       "int>, at::cuda::detail::TensorInfo<{t} const, unsigned int>, "
                       "at::cuda::detail::TensorInfo<long const, unsigned int>, int, int, "
                       "unsigned int, unsigned int, long)",
    "aten::_scaled_dot_product_flash_attention": "void pytorch_flash::flash_fwd_kernel<"
                                                 "pytorch_flash::Flash_fwd_kernel_traits<64, 128, "
                                                 "128, 4, false, false, {t}>, false, true, false, "
                                                 "false, true, true, false, false>("
                                                 "pytorch_flash::Flash_fwd_params)",
}
_GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::convolution",
             "aten::_convolution", "aten::linear", "aten::matmul")
_REDUCE_OPS = {"aten::sum": "sum_functor", "aten::mean": "MeanOps", "aten::max": "MaxOps",
               "aten::amax": "MaxOps", "aten::min": "MinOps", "aten::norm": "NormOps",
               "aten::linalg_vector_norm": "NormTwoOps", "aten::var_mean": "WelfordOps"}


def _camel(op: str) -> str:
    base = op.split("::")[-1].rstrip("_")
    return "".join(p[:1].upper() + p[1:] for p in base.split("_") if p)


def _torch_type(kernel) -> str:
    name = kernel.name
    for tag, t in (("bf16", "c10::BFloat16"), ("f16", "c10::Half"), ("f64", "double")):
        if name.endswith(tag) or f"){tag}" in name:
            return t
    return "float"


def _dtag(kernel) -> str:
    for tag in ("bf16", "f16", "f64"):
        if f"){tag}" in kernel.name or kernel.name.endswith(tag):
            return _DT[tag]
    return "f32"


def cuda_kernel_name(kernel, generation: str = "hopper") -> str:
    """The name CUPTI would report for ``kernel`` (a KernelRecord of the op-level tracer)."""
    if kernel.kind == "comm" or kernel.name.startswith(("ncclDevKernel_", "ncclKernel_")):
        return kernel.name if kernel.name.startswith("nccl") else (
            f"ncclDevKernel_{_camel(kernel.comm_op or 'all_reduce')}_Sum_f32_RING_LL"
            "(ncclDevKernelArgsStorage<4096ul>)")
    op = kernel.op or kernel.name.split("(")[0]
    t = _torch_type(kernel)
    suffix = kernel.name.rsplit("/", 1)[-1] if "/" in kernel.name.split(")")[-1] else ""
    special = _SPECIAL.get(f"{op}/{suffix}") or _SPECIAL.get(op)
    if special:
        return special.format(t=t)
    if op in _GEMM_OPS:
        d = _dtag(kernel)
        return _GEMM["ampere" if generation.lower().startswith("amp") else "hopper"].format(d=d)
    if op in _REDUCE_OPS:
        return _REDUCE.format(t=t, f=_REDUCE_OPS[op])
    if op.startswith("aten::_foreach_"):
        depth = 3 if any(x in op for x in ("addc", "lerp")) else 2
        return _FOREACH.format(n=depth, t=t, f=_camel(op.replace("_foreach_", "")) + "Functor")
    return _ELEMENTWISE.format(f=_camel(op) + "Functor", t=t, n=3 if "backward" in op else 2)


def launch_geometry(kernel, sm_count: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) a CUDA library would pick: persistent GEMMs fill the SMs, elementwise
    kernels cover the elements 4 per thread with 128-thread blocks, multi-tensor-apply uses
    512-thread blocks per chunk."""
    if kernel.grid and kernel.block:
        return tuple(kernel.grid), tuple(kernel.block)
    op = kernel.op or ""
    if kernel.kind == "comm":
        return (max(1, sm_count // 8), 1, 1), (512, 1, 1)
    if op in _GEMM_OPS:
        return (sm_count, 1, 1), (384, 1, 1)
    elems = max(1, int((kernel.bytes_written or 4) // 4))
    if op.startswith("aten::_foreach_"):
        return (max(1, math.ceil(elems / 65536)), 1, 1), (512, 1, 1)
    return (max(1, math.ceil(elems / 512)), 1, 1), (128, 1, 1)
