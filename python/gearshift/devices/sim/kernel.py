"""Kernel time and power at an SM clock, vectorised over every kernel of a trace.

    x      = f_max / f_eff                                   (>= 1)
    t_c    = flops / (peak_flops * gemm_efficiency) * x      compute part, scales with 1/f
    t_m    = bytes / (mem_bw * mem_efficiency) * (1 - mu + mu * x)
                                                             memory part, mu = mem_f_share
    t      = max(t_c, t_m) + alpha * min(t_c, t_m) + launch_s
    comm:  overlap.comm_time_s with overlap.library_params (NCCL): the CTA-/link-bound kernel
           law at the collective's CTA count and block size (0: NCCL's defaults, the
           preset's comm_sms_default CTAs of 512 threads), latency by ring steps

    V(f)/V(fmax) = v_min + (1 - v_min) * clip((f - f_knee) / (f_max - f_knee), 0, 1)
    phi(f) = (V(f)/V(fmax))^2 * f / f_max
    P      = static + leak * V/Vmax + sm_power * activity * phi(f) + mem_power * t_m/t_busy
    activity = u_c + stall_activity * (1 - u_c),  u_c = t_c / t_busy

A kernel whose power at the requested clock exceeds the TDP runs at the highest supported clock
under it (the driver's power capping), which is why high clocks on the A40 give nothing back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import TraceError
from . import overlap as ov
from .presets import GPUPreset

DEFAULT_COMPUTE_SHARE = 0.6   # assumed split of a measured-only kernel (no FLOPs/bytes)


@dataclass
class KernelArrays:
    """The numeric columns of a trace the model needs (one entry per kernel)."""

    is_comm: np.ndarray      # bool
    flops: np.ndarray        # compute kernels: FLOPs (measured-only kernels: equivalent)
    mem_bytes: np.ndarray    # DRAM bytes (comm: the traffic it takes from DRAM)
    link_bytes: np.ndarray   # comm: bytes over the link (payload x algorithm factor)
    names: list
    steps: np.ndarray | None = None   # comm: ring steps (overlap.ring_steps), for the latency

    def __len__(self) -> int:
        return len(self.is_comm)

    @classmethod
    def from_trace(cls, trace, preset: GPUPreset) -> "KernelArrays":
        n = len(trace.kernels)
        world = int(trace.meta.get("world_size", trace.meta.get("tp", 8)) or 8)
        measured_mhz = float(trace.meta.get("measured_freq_mhz", preset.max_freq_mhz))
        is_comm = np.zeros(n, dtype=bool)
        flops = np.zeros(n)
        mem = np.zeros(n)
        link = np.zeros(n)
        steps = np.zeros(n)
        for i, k in enumerate(trace.kernels):
            if k.kind == "comm":
                is_comm[i] = True
                steps[i] = ov.ring_steps(k.comm_op, world)
                payload = k.comm_bytes if k.comm_bytes is not None else k.bytes_total
                if payload is None:
                    if k.duration_s is None:
                        raise TraceError(
                            f"communication kernel {i} ('{k.name}') has neither comm_bytes nor a "
                            "measured duration", "record comm_bytes (the per-rank payload) or "
                            "duration_s for every communication kernel")
                    payload = max(k.duration_s - preset.comm_latency_s, 0.0) * preset.link_bw_bytes_s
                    link[i] = payload
                else:
                    factor = ov.ALGO_FACTOR.get(k.comm_op, lambda _n: 1.0)
                    link[i] = payload * factor(max(world, 2))
                mem[i] = payload * ov.MEM_FACTOR.get(k.comm_op, 2.0)
                continue
            has_model = k.flops is not None or k.bytes_total is not None
            if has_model:
                flops[i] = k.flops or 0.0
                mem[i] = k.bytes_total or 0.0
            elif k.duration_s is not None:
                # split the measured time: the share that scales with the clock becomes FLOPs,
                # sized so the model gives back the measured duration at the measured clock
                share = DEFAULT_COMPUTE_SHARE
                d = max(k.duration_s - preset.launch_s, 0.0) / (
                    max(share, 1 - share) + preset.overlap_alpha * min(share, 1 - share))
                x = preset.max_freq_mhz / measured_mhz
                mu = preset.mem_f_share
                flops[i] = share * d * preset.peak_flops * preset.gemm_efficiency / x
                mem[i] = (1 - share) * d * preset.mem_bw_bytes_s * preset.mem_efficiency \
                    / (1 - mu + mu * x)
            else:
                raise TraceError(
                    f"kernel {i} ('{k.name}') has neither FLOPs/bytes nor a measured duration",
                    "trace with the op-level tracer (which derives FLOPs and bytes) or with "
                    "CUPTI (which records durations)")
        return cls(is_comm, flops, mem, link, [k.name for k in trace.kernels], steps)


def v_ratio(preset: GPUPreset, f_mhz) -> np.ndarray:
    f = np.asarray(f_mhz, dtype=np.float64)
    fmax = preset.max_freq_mhz
    ramp = np.clip((f - preset.f_knee_mhz) / max(fmax - preset.f_knee_mhz, 1.0), 0.0, 1.0)
    return preset.v_min + (1.0 - preset.v_min) * ramp


def phi(preset: GPUPreset, f_mhz) -> np.ndarray:
    f = np.asarray(f_mhz, dtype=np.float64)
    return v_ratio(preset, f) ** 2 * f / preset.max_freq_mhz


@dataclass
class KernelCost:
    """Per-kernel solo figures at the effective clock."""

    time_s: np.ndarray       # including the launch gap
    busy_s: np.ndarray       # time minus the launch gap
    t_c: np.ndarray          # compute part at f_eff
    t_m: np.ndarray          # memory part at f_eff
    power_w: np.ndarray      # average power over busy_s
    gap_power_w: np.ndarray  # power during the launch gap = static + leakage at this clock
    f_eff_mhz: np.ndarray
    stall_power_w: np.ndarray  # dynamic power of a kernel stretched by contention, per extra s

    def __post_init__(self):
        self.energy_j = self.power_w * self.busy_s + self.gap_power_w * (self.time_s - self.busy_s)
        # dynamic energy of the kernel's work (the rest is base power x wall time)
        self.dyn_energy_j = (self.power_w - self.gap_power_w) * self.busy_s


def comm_launch(preset: GPUPreset, n: int, comm_sms=None, comm_block=None):
    """(CTAs, threads per CTA) of each collective: the given ones, NCCL's defaults where 0."""
    req = np.zeros(n) if comm_sms is None else np.asarray(comm_sms, dtype=np.float64)
    sms = np.where(req > 0, req, float(preset.comm_sms_default))
    blk = np.zeros(n) if comm_block is None else np.asarray(comm_block, dtype=np.float64)
    blk = np.where(blk > 0, blk, float(ov.NCCL_BLOCK_THREADS))
    return sms, blk


def _cost_at(ka: KernelArrays, p: GPUPreset, f: np.ndarray, comm_sms=None,
             comm_block=None) -> KernelCost:
    fmax = p.max_freq_mhz
    x = fmax / f
    mu = p.mem_f_share
    t_c = ka.flops / (p.peak_flops * p.gemm_efficiency) * x
    t_m = ka.mem_bytes / (p.mem_bw_bytes_s * p.mem_efficiency) * (1.0 - mu + mu * x)
    busy = np.maximum(t_c, t_m) + p.overlap_alpha * np.minimum(t_c, t_m)
    if ka.is_comm.any():
        # one kernel law for every collective (overlap.py, NCCL's figures): a CTA count and block
        # size where the overlap option gives one, the library's defaults where not (0)
        sms, blk = comm_launch(p, len(ka), comm_sms, comm_block)
        q = ov.library_params(p)
        steps = ka.steps if ka.steps is not None else np.ones(len(ka))
        t_comm = ov.comm_time_s(q, ka.link_bytes, sms, blk, f, fmax,
                                latency_s=ov.library_latency_s(steps))
        busy = np.where(ka.is_comm, t_comm, busy)
        t_c = np.where(ka.is_comm, 0.0, t_c)
        t_m = np.where(ka.is_comm, np.minimum(ka.mem_bytes / (p.mem_bw_bytes_s * p.mem_efficiency),
                                              t_comm), t_m)
    safe = np.where(busy > 0, busy, 1.0)
    u_c = np.where(busy > 0, t_c / safe, 0.0)
    u_m = np.where(busy > 0, np.minimum(t_m / safe, 1.0), 0.0)
    act = u_c + p.stall_activity * (1.0 - u_c)
    vr = v_ratio(p, f)
    ph = vr ** 2 * f / fmax
    base = p.static_power_w + p.leak_power_w * vr
    dyn = p.sm_power_w * act * ph + p.mem_power_w * u_m
    if ka.is_comm.any():
        p_comm = ov.comm_power_w(q, sms, blk, f, fmax, p.sm_count, p.sm_power_w, ph)
        dyn = np.where(ka.is_comm, p_comm + p.mem_power_w * u_m, dyn)
    stall = p.sm_power_w * p.stall_activity * ph
    if ka.is_comm.any():
        stall = np.where(ka.is_comm, p_comm, stall)
    time = busy + p.launch_s
    return KernelCost(time, busy, t_c, t_m, base + dyn, base, f, stall)


def group_cap_clock(ka: KernelArrays, preset: GPUPreset, f_set_mhz: float,
                    comm_sms=None, comm_block=None) -> float:
    """The clock a run of kernels settles at under the power limit, averaged over the run.

    The board's power controller averages over a window much longer than one kernel, so a
    partition (ms) throttles as a whole: the highest supported clock <= f_set whose average
    power over the partition is within the TDP.
    """
    clocks = np.array(sorted(c for c in preset.freqs_mhz if c <= f_set_mhz), dtype=np.float64)
    if len(clocks) == 0:
        return float(f_set_mhz)

    def avg_power(f):
        c = _cost_at(ka, preset, np.full(len(ka), f), comm_sms, comm_block)
        return c.energy_j.sum() / max(c.time_s.sum(), 1e-30)

    if avg_power(clocks[-1]) <= preset.tdp_w:
        return float(clocks[-1])
    lo, hi = 0, len(clocks) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if avg_power(clocks[mid]) <= preset.tdp_w:
            lo = mid
        else:
            hi = mid
    return float(clocks[lo])


def kernel_costs(ka: KernelArrays, preset: GPUPreset, f_set_mhz, comm_sms=None,
                 power_cap: str | bool = "kernel", comm_block=None) -> KernelCost:
    """Solo time and power of every kernel at its requested clock (scalar or per kernel).

    ``comm_block``: threads per block of each collective (0/None: the library default).
    ``power_cap``: "kernel" throttles each kernel alone, "group" throttles all of them to one
    clock by their average power (``f_set_mhz`` must then be a scalar), False never throttles.
    """
    if power_cap == "group":
        f_set_mhz = group_cap_clock(ka, preset, float(f_set_mhz), comm_sms, comm_block)
        power_cap = False
    f = np.broadcast_to(np.asarray(f_set_mhz, dtype=np.float64), (len(ka),)).copy()
    cost = _cost_at(ka, preset, f, comm_sms, comm_block)
    if not power_cap:
        return cost
    over = cost.power_w > preset.tdp_w
    if not over.any():
        return cost
    # the highest supported clock under the TDP, found by bisection over the clock list
    clocks = np.array(sorted(preset.freqs_mhz), dtype=np.float64)
    idx = np.flatnonzero(over)
    sub = KernelArrays(ka.is_comm[idx], ka.flops[idx], ka.mem_bytes[idx], ka.link_bytes[idx], [],
                       None if ka.steps is None else ka.steps[idx])
    sub_sms = None if comm_sms is None else np.asarray(comm_sms)[idx]
    sub_blk = None if comm_block is None else np.asarray(comm_block)[idx]
    lo = np.zeros(len(idx), dtype=np.int64)                    # always feasible (assumed)
    hi = np.searchsorted(clocks, f[idx], side="right") - 1     # infeasible
    while True:
        active = hi - lo > 1
        if not active.any():
            break
        mid = (lo + hi) // 2
        pw = _cost_at(sub, preset, clocks[mid], sub_sms, sub_blk).power_w
        ok = pw <= preset.tdp_w
        lo = np.where(active & ok, mid, lo)
        hi = np.where(active & ~ok, mid, hi)
    f[idx] = clocks[lo]
    return _cost_at(ka, preset, f, comm_sms, comm_block)
