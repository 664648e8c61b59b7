"""Simulated GPU: partition timeline, overlap contention, power capping and clock switches."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.devices import open_device
from gearshift.devices.base import Device
from gearshift.devices.sim import SimDevice
from gearshift.devices.sim.kernel import KernelArrays, kernel_costs
from gearshift.devices.sim.workloads import gpt_stack_trace
from gearshift.errors import ConfigError, UnsupportedClockError
from gearshift.model import NO_OVERLAP, KernelRecord, KernelTrace, Overlap, Partitioning

SERIAL = Overlap("serial")
START = Overlap.window(0, 99)


def small_trace():
    """gemm0 -> allreduce -> copy; gemm1 -> gemm2 independent of the all-reduce (the other
    nanobatch's work), so the all-reduce can hide under them."""
    ks = [KernelRecord(f"gemm{i}", flops=2 * 4096.0 ** 3, bytes_read=1e8) for i in range(3)]
    ks.insert(1, KernelRecord("allreduce", kind="comm", comm_op="all_reduce", comm_bytes=2e9))
    ks += [KernelRecord("copy", flops=1e6, bytes_read=4e9, bytes_written=4e9)]
    for k, deps in zip(ks, [(), (0,), (), (2,), (1, 3)]):
        k.deps = deps
    return KernelTrace(ks, source="synthetic", meta={"world_size": 8})


def test_serial_partition_is_the_sum_of_its_kernels():
    dev = SimDevice("h100-sxm", power_cap=False)
    tr = small_trace()
    part = Partitioning.from_cuts(tr, [0, 4])
    res = dev.run_iteration(tr, part, [(1200, SERIAL), (1200, NO_OVERLAP)], advance=False,
                            switch_latency_s=0.0)
    c = kernel_costs(KernelArrays.from_trace(tr, dev.preset), dev.preset, 1200, power_cap=False)
    assert res.partition_time_s[0] == pytest.approx(c.time_s[:4].sum())
    assert res.partition_energy_j[1] == pytest.approx(c.energy_j[4])
    assert res.time_s == pytest.approx(c.time_s.sum())
    assert res.energy_j == pytest.approx(res.static_energy_j + res.dynamic_energy_j)
    assert np.allclose(res.kernel_end_s - res.kernel_start_s, c.time_s)
    assert np.all(np.diff(res.kernel_start_s) > 0)
    assert res.source == "simulated" and res.energy_scope == "gpu"


def test_overlap_shortens_and_contends():
    dev = SimDevice("h100-sxm", power_cap=False)
    tr = small_trace()
    part = Partitioning.from_cuts(tr, [0, 4])
    ser = dev.run_iteration(tr, part, [(1980, SERIAL), (1980, NO_OVERLAP)], advance=False)
    ovl = dev.run_iteration(tr, part, [(1980, START), (1980, NO_OVERLAP)], advance=False)
    assert ovl.partition_time_s[0] < ser.partition_time_s[0]
    solo = ser.kernel_end_s - ser.kernel_start_s
    both = ovl.kernel_end_s - ovl.kernel_start_s
    assert both[2] > solo[2] * 1.01           # the GEMM beside the all-reduce loses SMs
    assert both[0] == pytest.approx(solo[0])  # gemm0 (the producer) runs before it, alone
    # launched with the first op after it (gemm1), after its producer gemm0
    assert ovl.kernel_start_s[1] == pytest.approx(ovl.kernel_end_s[0])
    assert ovl.kernel_start_s[2] == pytest.approx(ovl.kernel_start_s[1])
    # the comm kernel overlaps the GEMMs, so the partition is shorter than the serial sum
    assert ovl.partition_time_s[0] >= max(both[[0, 2, 3]].sum(), both[0] + both[1]) - 1e-12
    # its consumer (copy, partition 1) starts after it ends
    assert ovl.kernel_start_s[4] >= ovl.kernel_end_s[1] - 1e-12
    # more SMs for the collective: faster collective, slower GEMMs
    wide = dev.run_iteration(tr, part, [(1980, Overlap.window(0, 99, 64)), (1980, NO_OVERLAP)],
                             advance=False)
    wide_d = wide.kernel_end_s - wide.kernel_start_s
    assert wide_d[2] > both[2]
    after = dev.run_iteration(tr, part, [(1980, Overlap.window(1, 99)), (1980, NO_OVERLAP)],
                              advance=False)
    assert after.kernel_start_s[1] == pytest.approx(after.kernel_end_s[2])
    # window0-0: the compute stream waits for the all-reduce before gemm2
    early = dev.run_iteration(tr, part, [(1980, Overlap.window(0, 0)), (1980, NO_OVERLAP)],
                              advance=False)
    assert early.kernel_start_s[3] >= early.kernel_end_s[1] - 1e-12
    assert early.kernel_end_s[1] > early.kernel_end_s[2]


def test_a_consumer_waits_for_its_collective_whatever_the_window():
    dev = SimDevice("h100-sxm", power_cap=False)
    tr = small_trace()
    tr.kernels[2].deps = (1,)            # gemm1 now reads the all-reduce: nothing can overlap
    part = Partitioning.from_cuts(tr, [0, 4])
    ser = dev.run_iteration(tr, part, [(1980, SERIAL), (1980, NO_OVERLAP)], advance=False)
    ovl = dev.run_iteration(tr, part, [(1980, START), (1980, NO_OVERLAP)], advance=False)
    assert ovl.kernel_start_s[2] >= ovl.kernel_end_s[1] - 1e-12
    assert ovl.time_s == pytest.approx(ser.time_s)
    # unknown data flow (a CUPTI trace): every kernel waits for all earlier ones
    for k in tr.kernels:
        k.deps = None
    dev2 = SimDevice("h100-sxm", power_cap=False)
    unk = dev2.run_iteration(tr, part, [(1980, START), (1980, NO_OVERLAP)], advance=False)
    assert unk.time_s == pytest.approx(ser.time_s)


def test_switch_latency_runs_the_old_clock():
    tr = gpt_stack_trace(layers=2, hidden=2048, heads=16, seq=1024, tp=1)
    part = Partitioning.from_cuts(tr, [0, len(tr) // 2])
    dev = SimDevice("a100-sxm", power_cap=False)
    lo, hi = 810, 1410
    t_fast = dev.run_iteration(tr, part, [(hi, NO_OVERLAP)] * 2, advance=False,
                               switch_latency_s=0).partition_time_s[1]
    t_slow = dev.run_iteration(tr, part, [(lo, NO_OVERLAP)] * 2, advance=False,
                               switch_latency_s=0).partition_time_s[1]
    assert t_slow > t_fast * 1.2
    for latency, expect in ((0.0, t_slow), (10.0, t_fast)):
        r = dev.run_iteration(tr, part, [(hi, NO_OVERLAP), (lo, NO_OVERLAP)], advance=False,
                              switch_latency_s=latency)
        assert r.num_switches == 1
        assert r.partition_time_s[1] == pytest.approx(expect)
    mid = t_fast / 2             # requested at partition 1's start, lands halfway through it
    r = dev.run_iteration(tr, part, [(hi, NO_OVERLAP), (lo, NO_OVERLAP)], advance=False,
                          switch_latency_s=mid)
    # half the work at the old clock, the rest at the new one
    assert r.partition_time_s[1] == pytest.approx(mid + 0.5 * t_slow)


def test_switch_energy_and_counting():
    tr = small_trace()
    part = Partitioning.from_cuts(tr, [0, 2, 4])
    dev = SimDevice(open_device("sim", preset="h100-sxm").preset.with_(switch_energy_j=0.5))
    r = dev.run_iteration(tr, part, [(1980, SERIAL), (990, SERIAL), (1980, NO_OVERLAP)],
                          advance=False)
    assert r.num_switches == 2 and r.switch_energy_j == pytest.approx(1.0)
    assert r.energy_j == pytest.approx(r.static_energy_j + r.dynamic_energy_j + 1.0)


def test_bad_choices():
    tr = small_trace()
    part = Partitioning.from_cuts(tr, [0, 4])
    dev = SimDevice("h100-sxm")
    with pytest.raises(UnsupportedClockError, match="1000 MHz is not a supported SM clock"):
        dev.run_iteration(tr, part, [(1000, SERIAL), (1980, NO_OVERLAP)])
    with pytest.raises(ConfigError, match="1 choices for 2 partitions"):
        dev.run_iteration(tr, part, [(1980, SERIAL)])
    with pytest.raises(UnsupportedClockError):
        dev.set_sm_clock(1000)


def test_device_protocol_and_counters():
    dev = open_device("sim", preset="a40")
    assert isinstance(dev, Device) and dev.kind == "sim" and "simulated" in dev.name
    assert dev.energy_j() == 0.0 and dev.time_s() == 0.0
    dev.idle(2.0)
    assert dev.energy_j() == pytest.approx(2 * 70.38)
    tr = small_trace()
    dev.set_sm_clock(1200)
    r = dev.run_iteration(tr)
    assert dev.time_s() == pytest.approx(2.0 + r.time_s)
    assert dev.energy_j() == pytest.approx(2 * 70.38 + r.energy_j)
    dev.reset_sm_clock()
    dev.reset_sm_clock()
    assert dev.sm_clock_mhz == 1740


def test_profile_options_match_iterations():
    tr = gpt_stack_trace(layers=2, hidden=2048, heads=16, seq=1024, tp=8)
    cuts = [0] + [i for i, k in enumerate(tr.kernels) if k.kind == "comm"]
    part = Partitioning.from_cuts(tr, sorted(set(cuts)))
    dev = SimDevice("h100-sxm")
    opts = [(1980, SERIAL), (1200, START), (690, SERIAL)]
    T, E = dev.profile_options(tr, part, opts)
    assert T.shape == E.shape == (3, len(part.partitions))
    r = dev.run_iteration(tr, part, [opts[1]] * len(part.partitions), advance=False,
                          switch_latency_s=0)
    dev2 = SimDevice("h100-sxm")
    dev2.run_iteration(tr, part, [opts[1]] * len(part.partitions), switch_latency_s=0)
    r2 = dev2.run_iteration(tr, part, [opts[1]] * len(part.partitions), advance=False)
    assert np.allclose(T[1], r2.partition_time_s) and np.allclose(E[1], r2.partition_energy_j)
    assert r.time_s >= r2.time_s    # the first run still paid the switch from the max clock
    assert np.all(T[2] > T[0])


def test_thousands_of_kernels_run(benchmark=None):
    """Functional check on a big trace (the speed target lives in bench/sim_timeline.py)."""
    tr = gpt_stack_trace(layers=48, hidden=4096, heads=32, seq=2048, tp=8)
    assert len(tr) > 1500
    part = Partitioning.from_cuts(tr, list(range(0, len(tr), 4)))
    dev = SimDevice("h100-sxm")
    rng = np.random.default_rng(0)
    fs = rng.choice(dev.preset.freqs_mhz[:50], size=len(part.partitions))
    ch = [(int(f), START if p.has_comm else NO_OVERLAP) for f, p in zip(fs, part.partitions)]
    r = dev.run_iteration(tr, part, ch, advance=False)
    assert r.time_s == pytest.approx(r.partition_time_s.sum())
    bounds = np.cumsum(r.partition_time_s)
    assert np.all(r.kernel_end_s <= bounds[[p.index for p in part.partitions
                                             for _ in range(p.start, p.end)]] + 1e-9)
    assert np.all(r.kernel_end_s >= r.kernel_start_s)


def test_runs_a_schedule():
    from gearshift.model import Schedule, ScheduleEntry

    tr = small_trace()
    part = Partitioning.from_cuts(tr, [0, 4])
    sched = Schedule([ScheduleEntry(0, 0, 1200, START), ScheduleEntry(1, 4, 990)],
                     model_signature=tr.signature(), device="NVIDIA H100 80GB HBM3",
                     num_kernels=len(tr))
    dev = SimDevice("h100-sxm")
    a = dev.run_iteration(tr, part, sched, advance=False)
    b = dev.run_iteration(tr, part, [(1200, START), (990, NO_OVERLAP)], advance=False)
    assert (a.time_s, a.energy_j) == (b.time_s, b.energy_j)
    assert a.partition_freq_mhz.tolist() == [1200, 990]


def test_block_size_and_sms_reach_the_collective():
    dev = SimDevice("a100-sxm", power_cap=False)
    tr = small_trace()
    part = Partitioning.from_cuts(tr, [0, 4])

    def comm_time(ov):
        r = dev.run_iteration(tr, part, [(1410, ov), (1410, NO_OVERLAP)], advance=False,
                              switch_latency_s=0.0)
        return r.kernel_end_s[1] - r.kernel_start_s[1]

    few = comm_time(Overlap.window(0, 99, 6, 1024))
    small_blocks = comm_time(Overlap.window(0, 99, 6, 512))
    many = comm_time(Overlap.window(0, 99, 24, 1024))
    assert small_blocks > few > many
