"""Per-kernel time estimates used to size partitions (not to plan clocks: profiling does that).

The default is a roofline at the maximum clock with an H100-SXM-like device: compute time from
FLOPs, memory time from bytes, the larger wins, plus a launch gap. Any callable
``KernelRecord -> seconds`` can replace it (the simulator's kernel model, measured durations).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import KernelRecord


@dataclass(frozen=True)
class Roofline:
    flops_per_s: float = 989.4e12 * 0.62   # dense BF16 peak x typical GEMM efficiency
    bytes_per_s: float = 3350e9 * 0.80     # HBM3 bandwidth x typical streaming efficiency
    comm_bytes_per_s: float = 450e9        # NVLink4 per direction
    comm_latency_s: float = 20e-6
    launch_s: float = 3e-6

    def __call__(self, k: KernelRecord) -> float:
        if k.duration_s is not None:       # a trace from a GPU knows better
            return k.duration_s
        if k.kind == "comm":
            factor = 2.0 if k.comm_op == "all_reduce" else 1.0  # reduce-scatter + all-gather
            return self.comm_latency_s + factor * (k.comm_bytes or 0.0) / self.comm_bytes_per_s
        compute = (k.flops or 0.0) / self.flops_per_s
        memory = (k.bytes_total or 0.0) / self.bytes_per_s
        return self.launch_s + max(compute, memory)

    @classmethod
    def from_preset(cls, preset) -> "Roofline":
        """The roofline of a simulated GPU preset (gearshift.devices.sim.presets.GPUPreset)."""
        return cls(flops_per_s=preset.peak_flops * preset.gemm_efficiency,
                   bytes_per_s=preset.mem_bw_bytes_s * preset.mem_efficiency,
                   comm_bytes_per_s=preset.link_bw_bytes_s,
                   comm_latency_s=preset.comm_latency_s, launch_s=preset.launch_s)


DEFAULT_ESTIMATOR = Roofline()
