"""Simulated GPU: presets and the kernel time/power model."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import ConfigError, TraceError
from gearshift.devices.sim import get_preset
from gearshift.devices.sim.kernel import KernelArrays, kernel_costs, v_ratio
from gearshift.model import KernelRecord, KernelTrace


def test_presets_published_facts():
    h = get_preset("h100-sxm")
    assert h.sm_count == 132 and h.tdp_w == 700.0
    assert h.freqs_mhz[0] == 1980 and h.freqs_mhz[-1] == 345 and len(h.freqs_mhz) == 110
    assert set(np.diff(h.freqs_mhz)) == {-15}
    a = get_preset("a100")
    assert (a.min_freq_mhz, a.max_freq_mhz, a.tdp_w, a.sm_count) == (210, 1410, 400.0, 108)
    g = get_preset("A40")
    assert (g.min_freq_mhz, g.max_freq_mhz, g.tdp_w, g.sm_count) == (210, 1740, 300.0, 84)
    assert g.idle_power_w == pytest.approx(70.38)       # Perseus's measured blocking power
    facts = g.facts()
    assert facts.max_freq_mhz == 1740 and 1740 in facts.supported_freqs_mhz
    for p in (h, a, g):
        for name in ("tdp_w", "sm_power_w", "v_min", "switch_latency_s", "idle_power_w"):
            assert name in p.provenance, (p.key, name)
        assert 0.001 <= p.switch_latency_s <= 0.05       # ms-scale
    with pytest.raises(ConfigError, match="unknown simulated GPU preset"):
        get_preset("tpu-v5")


def test_voltage_curve_flat_below_knee_then_rising():
    p = get_preset("a40")
    v = v_ratio(p, np.array([210, p.f_knee_mhz, 1400, 1740]))
    assert v[0] == v[1] == pytest.approx(p.v_min)
    assert v[1] < v[2] < v[3] == pytest.approx(1.0)


def _trace(*kernels):
    return KernelTrace(list(kernels), source="synthetic", meta={"world_size": 8})


GEMM = KernelRecord("gemm", flops=2 * 8192.0 ** 3, bytes_read=3 * 8192.0 ** 2 * 2)
COPY = KernelRecord("copy", flops=1e6, bytes_read=2e9, bytes_written=2e9)
ALLREDUCE = KernelRecord("nccl_allreduce", kind="comm", comm_op="all_reduce", comm_bytes=256e6)


def test_time_scaling_with_clock():
    p = get_preset("h100-sxm")
    ka = KernelArrays.from_trace(_trace(GEMM, COPY, ALLREDUCE), p)
    hi = kernel_costs(ka, p, 1200, power_cap=False)
    lo = kernel_costs(ka, p, 600, power_cap=False)
    ratio = lo.time_s / hi.time_s
    assert ratio[0] == pytest.approx(2.0, rel=0.01)      # compute-bound: 1/f
    assert 1.0 < ratio[1] < 1.1                          # memory-bound: nearly flat
    # NCCL's default channels sit at the CTA-/link-bound knee: a weak clock dependence (the
    # assumed CTA clock exponent 0.25); with twice the CTAs the collective is link-bound, flat
    assert 1.0 < ratio[2] < 1.15
    two = np.array([0, 0, 2 * p.comm_sms_default])
    r2 = (kernel_costs(ka, p, 600, comm_sms=two, power_cap=False).time_s[2]
          / kernel_costs(ka, p, 1200, comm_sms=two, power_cap=False).time_s[2])
    assert 1.0 < r2 < 1.03 and r2 < ratio[2]
    # at the max clock: NCCL's ring latency (8.4 us + 14 steps x 3.4 us) plus the payload over
    # its ceiling (80 % of the link) at the knee, 2^(-1/4)
    algo = 2 * 7 / 8
    top = kernel_costs(ka, p, p.max_freq_mhz, power_cap=False)
    assert top.time_s[2] == pytest.approx(
        8.4e-6 + 14 * 3.4e-6 + p.launch_s
        + 256e6 * algo / (0.8 * p.link_bw_bytes_s * 2 ** -0.25), rel=1e-6)
    # lower clock, lower power; the memory-bound kernel saves energy when slowed
    assert np.all(lo.power_w < hi.power_w)
    assert lo.energy_j[1] < hi.energy_j[1]


def test_power_cap_throttles_to_tdp():
    p = get_preset("a40")
    ka = KernelArrays.from_trace(_trace(GEMM), p)
    free = kernel_costs(ka, p, 1740, power_cap=False)
    capped = kernel_costs(ka, p, 1740)
    assert free.power_w[0] > p.tdp_w                     # a large GEMM wants more than 300 W
    assert capped.power_w[0] <= p.tdp_w
    assert capped.f_eff_mhz[0] < 1740 and capped.time_s[0] > free.time_s[0]
    grouped = kernel_costs(ka, p, 1740, power_cap="group")
    assert grouped.energy_j.sum() / grouped.time_s.sum() <= p.tdp_w


def test_measured_only_and_missing_kernels():
    p = get_preset("h100-sxm")
    measured = KernelRecord("k", duration_s=1e-3)
    ka = KernelArrays.from_trace(_trace(measured), p)
    c = kernel_costs(ka, p, p.max_freq_mhz, power_cap=False)
    assert c.time_s[0] == pytest.approx(1e-3, rel=0.2)
    with pytest.raises(TraceError, match="kernel 1 .'bare'. has neither FLOPs/bytes nor"):
        KernelArrays.from_trace(_trace(GEMM, KernelRecord("bare")), p)
    with pytest.raises(TraceError, match="communication kernel 0"):
        KernelArrays.from_trace(_trace(KernelRecord("c", kind="comm")), p)
