"""The power limit holds for overlapped partitions too (issue #3: overlap ran above the TDP)."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.devices.sim import SimDevice
from gearshift.model import NO_OVERLAP, KernelRecord, KernelTrace, Overlap, Partitioning

TOL_W = 1e-6


def comm_heavy_trace(num_parts: int = 6) -> tuple[KernelTrace, Partitioning]:
    """GEMM-heavy partitions, each with a large all-reduce to hide under them, plus a
    comm-free partition and a small-comm one."""
    ks, cuts = [], []
    for i in range(num_parts):
        cuts.append(len(ks))
        ks += [KernelRecord(f"gemm{i}a", flops=2 * 8192.0 ** 3, bytes_read=4e8),
               KernelRecord(f"ar{i}", kind="comm", comm_op="all_reduce",
                            comm_bytes=(0.5 + i) * 2e9),
               KernelRecord(f"gemm{i}b", flops=2 * 8192.0 ** 3, bytes_read=4e8),
               KernelRecord(f"copy{i}", flops=1e6, bytes_read=2e9, bytes_written=2e9)]
    cuts.append(len(ks))
    ks += [KernelRecord("gemm_tail", flops=2 * 8192.0 ** 3, bytes_read=4e8)]
    for i in range(num_parts):      # ar_i reads gemm_ia; gemm_ib is independent of it
        ks[4 * i].deps, ks[4 * i + 1].deps = (), (4 * i,)
        ks[4 * i + 2].deps, ks[4 * i + 3].deps = (), (4 * i + 1, 4 * i + 2)
    cuts.append(len(ks))
    ks += [KernelRecord("small_gemm", flops=2 * 1024.0 ** 3, bytes_read=1e7),
           KernelRecord("small_ar", kind="comm", comm_op="all_reduce", comm_bytes=1e6),
           KernelRecord("small_gemm2", flops=2 * 1024.0 ** 3, bytes_read=1e7)]
    tr = KernelTrace(ks, source="synthetic", meta={"world_size": 8})
    return tr, Partitioning.from_cuts(tr, cuts)


# The calibrated A100 (issue #13) draws at most ~380 W on this trace, below its 400 W TDP, as a
# real A100 does; a 350 W power limit (what `nvidia-smi -pl 350` sets) makes the limit bind.
@pytest.mark.parametrize("preset,limit_w", [("h100-sxm", None), ("a100-sxm", 350.0)])
def test_no_partition_exceeds_the_tdp(preset, limit_w):
    from gearshift.devices.sim import get_preset

    p = get_preset(preset)
    dev = SimDevice(p if limit_w is None else p.with_(tdp_w=limit_w))
    tr, part = comm_heavy_trace()
    P = len(part.partitions)
    tdp = dev.preset.tdp_w
    clocks = sorted(dev.preset.freqs_mhz)
    modes = [NO_OVERLAP, Overlap("serial"), Overlap.window(0, 99), Overlap.window(1, 99),
             Overlap.window(0, 99, 64)]
    worst = 0.0
    for f in clocks[::4] + [clocks[-1]]:
        for ov in modes:
            res = dev.run_iteration(tr, part, [(f, ov)] * P, advance=False,
                                    switch_latency_s=0.0)
            pw = res.partition_energy_j / res.partition_time_s
            worst = max(worst, float(pw.max()))
            assert np.all(pw <= tdp + TOL_W), (f, ov, pw.max())
            assert np.all(res.partition_eff_freq_mhz <= f)
    # the trace is heavy enough that the limit binds (otherwise this test proves nothing)
    assert worst > 0.97 * tdp
    # mixed clocks with switches mid-partition: each piece runs at a capped clock
    rng = np.random.default_rng(1)
    for _ in range(5):
        fs = rng.choice(clocks[-20:], size=P)
        res = dev.run_iteration(tr, part, [(int(f), Overlap.window(0, 99)) for f in fs],
                                advance=False, switch_latency_s=1e-4)
        pw = res.partition_energy_j / res.partition_time_s
        assert np.all(pw <= tdp + TOL_W)


def test_overlap_cap_throttles_the_clock_and_reports_it():
    dev = SimDevice("h100-sxm")
    tr, part = comm_heavy_trace()
    P = len(part.partitions)
    top = dev.preset.max_freq_mhz
    capped = dev.run_iteration(tr, part, [(top, Overlap.window(0, 99))] * P, advance=False)
    free = SimDevice("h100-sxm", power_cap=False).run_iteration(
        tr, part, [(top, Overlap.window(0, 99))] * P, advance=False)
    over = free.partition_energy_j / free.partition_time_s > dev.preset.tdp_w
    assert over.any()                                  # uncapped overlap exceeds the TDP ...
    assert np.all(capped.partition_eff_freq_mhz[over] < top)   # ... so the clock drops
    assert np.all(capped.partition_time_s[over] > free.partition_time_s[over])
    # the cap picks the highest clock within the limit: one step up would exceed it
    clocks = np.array(sorted(dev.preset.freqs_mhz))
    for p in np.flatnonzero(over):
        f_eff = int(capped.partition_eff_freq_mhz[p])
        up = int(clocks[np.searchsorted(clocks, f_eff) + 1])
        res = SimDevice("h100-sxm", power_cap=False).run_iteration(
            tr, part, [(up, Overlap.window(0, 99))] * P, advance=False)
        assert res.partition_energy_j[p] / res.partition_time_s[p] > dev.preset.tdp_w


def test_overlapped_partitions_within_the_tdp_are_unchanged():
    tr, part = comm_heavy_trace()
    P = len(part.partitions)
    capped_dev, free_dev = SimDevice("h100-sxm"), SimDevice("h100-sxm", power_cap=False)
    for f in (900, 1200, 1500):
        for ov in (Overlap.window(0, 99), Overlap.window(1, 99)):
            # no switch latency: partition 0 would otherwise start at the (capped) top clock
            capped = capped_dev.run_iteration(tr, part, [(f, ov)] * P, advance=False,
                                              switch_latency_s=0.0)
            free = free_dev.run_iteration(tr, part, [(f, ov)] * P, advance=False,
                                          switch_latency_s=0.0)
            ok = free.partition_energy_j / free.partition_time_s <= capped_dev.preset.tdp_w
            assert ok.sum() >= P - 1               # low clocks: (almost) all within the limit
            assert np.array_equal(capped.partition_eff_freq_mhz[ok], free.partition_freq_mhz[ok])
            assert np.allclose(capped.partition_time_s[ok], free.partition_time_s[ok],
                               rtol=0, atol=0)
            assert np.allclose(capped.partition_energy_j[ok], free.partition_energy_j[ok],
                               rtol=0, atol=0)
