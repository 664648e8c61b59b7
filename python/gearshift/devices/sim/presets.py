"""GPU presets: published facts, plus the figures fitted or assumed where none is published.

Every figure carries where it came from in ``PROVENANCE`` (published | reported | fitted |
assumed), and docs/simulator.md repeats the table. ``fitted`` figures come from
``calibration.fit_a40`` on the Perseus A40 stage profiles; the H100 and A100 presets reuse the
A40's dimensionless fitted shape parameters (efficiencies, memory share, V-f curve shape),
scaled to their own published clocks, TDP and bandwidths; that transfer is an assumption.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...errors import ConfigError
from ...model import DeviceFacts


def clock_range(lo: int, hi: int, step: int = 15) -> tuple[int, ...]:
    """Supported SM clocks, highest first (as NVML lists them)."""
    return tuple(range(hi, lo - 1, -step))


@dataclass(frozen=True)
class GPUPreset:
    key: str
    name: str                      # what NVML reports
    generation: str
    sm_count: int
    freqs_mhz: tuple[int, ...]     # supported SM clocks, highest first
    tdp_w: float                   # board power limit: clocks throttle above it
    peak_flops: float              # dense BF16 tensor FLOP/s at the max SM clock
    mem_bw_bytes_s: float          # DRAM bandwidth
    link_bw_bytes_s: float         # per-direction inter-GPU bandwidth (NVLink / PCIe)
    idle_power_w: float            # GPU waiting (pipeline blocking, between iterations)
    # --- kernel model (fitted on the A40 where marked) ---
    gemm_efficiency: float = 0.62  # achieved / peak tensor throughput for GEMM-like kernels
    mem_efficiency: float = 0.80   # achieved / peak DRAM bandwidth for streaming kernels
    mem_f_share: float = 0.25      # share of memory time that scales with 1/f (SM-side issue)
    overlap_alpha: float = 0.15    # t = max(tc, tm) + alpha * min(tc, tm)
    launch_s: float = 3e-6         # per-kernel launch gap on the stream
    comm_latency_s: float = 20e-6  # rough per-collective latency (partition estimates only)
    comm_sms_default: int = 16     # CTAs (one per SM) of a NCCL collective by default (channels)
    # --- power model ---
    static_power_w: float = 90.0   # busy-GPU constant power (leakage at the idle voltage + board)
    leak_power_w: float = 20.0     # extra leakage, scaled by V(f)/V(fmax)
    sm_power_w: float = 220.0      # dynamic SM power at full activity, fmax, V(fmax)
    mem_power_w: float = 40.0      # DRAM/IO dynamic power at full bandwidth
    stall_activity: float = 0.35   # SM activity of a memory-stalled kernel relative to compute
    comm_activity: float = 0.25    # SM activity of a comm kernel's SMs
    link_power_w: float = 15.0     # link (NVLink/PCIe) power while a comm kernel transfers
    v_min: float = 0.65            # V(f_knee)/V(fmax)
    f_knee_mhz: int = 900          # below it the voltage is flat
    # --- clock switching ---
    switch_latency_s: float = 0.010  # set -> new clock effective; the old clock runs meanwhile
    switch_energy_j: float = 0.0     # extra energy per switch (regulator), assumed 0 by default
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def max_freq_mhz(self) -> int:
        return max(self.freqs_mhz)

    @property
    def min_freq_mhz(self) -> int:
        return min(self.freqs_mhz)

    def facts(self) -> DeviceFacts:
        return DeviceFacts(name=self.name, supported_freqs_mhz=self.freqs_mhz,
                           max_freq_mhz=self.max_freq_mhz,
                           static_power_w=self.static_power_w + self.leak_power_w,
                           idle_power_w=self.idle_power_w, tdp_w=self.tdp_w)

    def with_(self, **changes) -> "GPUPreset":
        return replace(self, **changes)


_PUB = "published"
_COMMON_PROV = {
    "sm_count": _PUB, "freqs_mhz": _PUB + " (NVML supported clocks)", "tdp_w": _PUB,
    "peak_flops": _PUB + " (dense BF16)", "mem_bw_bytes_s": _PUB, "link_bw_bytes_s": _PUB,
    "gemm_efficiency": "fitted (A40)", "mem_efficiency": "fitted (A40)",
    "mem_f_share": "fitted (A40)", "overlap_alpha": "fitted (A40)",
    "static_power_w": "fitted (A40)", "leak_power_w": "fitted (A40)",
    "sm_power_w": "fitted (A40), scaled by TDP", "mem_power_w": "fitted (A40), scaled by TDP",
    "stall_activity": "fitted (A40)", "v_min": "fitted (A40)",
    "f_knee_mhz": "fitted (A40), scaled by fmax",
    "launch_s": "assumed (typical CUDA launch gap)",
    "comm_latency_s": "assumed", "comm_sms_default": "assumed (NCCL channel count)",
    "comm_activity": "assumed", "link_power_w": "assumed",
    "switch_latency_s": "order of magnitude published (ms-scale, Velicka et al. 2025, "
                        "arXiv:2502.20075); exact value assumed",
    "switch_energy_j": "assumed",
}

A40 = GPUPreset(
    key="a40", name="NVIDIA A40", generation="ampere", sm_count=84,
    freqs_mhz=clock_range(210, 1740), tdp_w=300.0, peak_flops=149.7e12,
    mem_bw_bytes_s=696e9, link_bw_bytes_s=56.25e9, idle_power_w=70.38,
    switch_latency_s=0.010,
    # starting point of the fit, read off the measured power curve (docs/simulator.md)
    v_min=0.75, f_knee_mhz=1100, static_power_w=70.0, leak_power_w=19.0, sm_power_w=350.0,
    mem_power_w=30.0, stall_activity=0.5,
    provenance={**_COMMON_PROV, "idle_power_w": "measured (Perseus artifact P_block, A40)",
                "link_bw_bytes_s": _PUB + " (NVLink bridge 112.5 GB/s both directions)"},
)

# efficiencies of the A40 are fitted; elsewhere they are typical figures, not fitted
_OTHER_PROV = {**_COMMON_PROV, "gemm_efficiency": "assumed (typical large-GEMM efficiency)",
               "mem_efficiency": "assumed (typical STREAM-like efficiency)",
               "overlap_alpha": "assumed", "static_power_w": "fitted (A40), scaled by idle power",
               "leak_power_w": "fitted (A40), scaled by idle power"}

# The Kareus testbed's part (A100-SXM4-40GB, HBM2e 1555 GB/s): the overlap calibration's data
# were measured on it. Its kernel efficiencies and power figures are fitted on that data
# (calibration_overlap.py, overlap_a100.json; applied by get_preset), not transferred from the A40.
_A100_FIT = "fitted (Kareus A100 attention/all-reduce overlap data, overlap_a100.json)"
A100_SXM = GPUPreset(
    key="a100-sxm", name="NVIDIA A100-SXM4-40GB", generation="ampere", sm_count=108,
    freqs_mhz=clock_range(210, 1410), tdp_w=400.0, peak_flops=312e12,
    mem_bw_bytes_s=1555e9, link_bw_bytes_s=300e9, idle_power_w=85.0, leak_power_w=4.5,
    comm_sms_default=24, switch_latency_s=0.010,
    provenance={**_OTHER_PROV,
                "idle_power_w": "measured (Kareus: ~85 W while an A100 waits on point-to-point "
                                "communication)",
                "link_bw_bytes_s": _PUB + " (NVLink3 600 GB/s both directions)",
                "comm_sms_default": "reported (NCCL on HGX A100 8 GPUs: 24 channels, "
                                    "nccl-tests#100 log)",
                "gemm_efficiency": _A100_FIT, "mem_efficiency": _A100_FIT,
                "static_power_w": _A100_FIT, "sm_power_w": _A100_FIT, "mem_power_w": _A100_FIT,
                "leak_power_w": "assumed (small: the A40 fit puts almost all base power in "
                                "static_power_w)"},
)

# Power of the H100 (no measured overlap data for it): busy-base power scaled from the A100 fit
# by the idle-power ratio, and the dynamic SM power set so that a dense GEMM at 1980 MHz draws
# about the 700 W TDP (reported: H100 SXM runs large GEMMs at its power limit); DRAM power as
# the A100's. Applied by get_preset from the same calibration file.
H100_SXM = GPUPreset(
    key="h100-sxm", name="NVIDIA H100 80GB HBM3", generation="hopper", sm_count=132,
    freqs_mhz=clock_range(345, 1980), tdp_w=700.0, peak_flops=989.4e12,
    mem_bw_bytes_s=3350e9, link_bw_bytes_s=450e9, idle_power_w=74.0, leak_power_w=4.5,
    comm_sms_default=20, switch_latency_s=0.005,
    provenance={**_OTHER_PROV, "idle_power_w": "reported (nvidia-smi idle readings, ~74 W)",
                "freqs_mhz": _PUB + " (NVML supported clocks 345-1980 MHz in 15 MHz steps; an "
                             "idle GH100 SXM part reports 345 MHz, awslabs/amazon-eks-ami#1985)",
                "link_bw_bytes_s": _PUB + " (NVLink4 900 GB/s both directions)",
                "static_power_w": "A100 fit x idle-power ratio (74/85)",
                "sm_power_w": "assumed: a dense GEMM at 1980 MHz draws ~700 W (the TDP)",
                "mem_power_w": "A100 fit (assumed equal)",
                "leak_power_w": "assumed (as the A100)"},
)

PRESETS: dict[str, GPUPreset] = {p.key: p for p in (H100_SXM, A100_SXM, A40)}
ALIASES = {"h100": "h100-sxm", "h100-sxm5": "h100-sxm", "a100": "a100-sxm",
           "a100-sxm4": "a100-sxm", "a100-sxm4-40gb": "a100-sxm"}


def get_preset(key: str) -> GPUPreset:
    """A preset by key (h100-sxm, a100-sxm, a40), with the fitted parameters applied."""
    k = ALIASES.get(key.lower(), key.lower())
    if k not in PRESETS:
        raise ConfigError(f"unknown simulated GPU preset '{key}'",
                          f"use one of {', '.join(PRESETS)} (GEARSHIFT_SIM_PRESET)")
    from .fitted import apply_fitted, apply_overlap_fit  # noqa: PLC0415

    return apply_overlap_fit(apply_fitted(PRESETS[k]))
