"""The communication-kernel and contention functions of devices/sim/overlap.py."""

import numpy as np
import pytest

from gearshift.devices.sim import overlap as ov


Q = ov.OverlapParams()


def test_comm_time_falls_with_ctas_and_saturates_at_the_link():
    lb = ov.link_bytes(32 * 2**20, "all_reduce", 2)
    t = ov.comm_time_s(Q, lb, np.arange(1, 41), 1024, 1410, 1410)
    assert np.all(np.diff(t) < 0)
    # CTA-bound at 1 CTA, link-bound at many: the last doublings gain little
    assert t[0] / t[1] > 1.6
    assert t[19] / t[39] < 1.25
    assert t[-1] > lb / Q.link_bw_bytes_s


def test_bigger_blocks_and_higher_clocks_are_faster_when_cta_bound():
    lb = ov.link_bytes(32 * 2**20, "all_reduce", 2)
    assert ov.comm_time_s(Q, lb, 2, 512, 1410, 1410) > ov.comm_time_s(Q, lb, 2, 1024, 1410, 1410)
    assert ov.comm_time_s(Q, lb, 2, 1024, 1000, 1410) > ov.comm_time_s(Q, lb, 2, 1024, 1410, 1410)


def test_compute_stretch_grows_with_ctas_taken():
    s = ov.compute_stretch(1e-3, 1e-4, np.array([0, 8, 20]), 108, 0.0, 1.6e12, 0.3)
    assert s[0] == pytest.approx(1.0)
    assert s[1] < s[2]
    assert s[2] == pytest.approx(108 / 88, rel=0.05)


def test_sweep_serial_is_the_sum_and_dependencies_hold():
    d = np.array([1.0, 2.0, 3.0])
    one = np.ones(3)
    st, en, cs, ce, _, _ = ov.sweep_window(d, one, one, np.array([4.0]), [-1], [-1])
    assert ce[0] == pytest.approx(4.0)
    assert st[0, 0] == pytest.approx(4.0)            # op 0 waits for the collective
    assert en[0, -1] == pytest.approx(10.0)


def test_sweep_window_overlaps_and_the_consumer_waits():
    d = np.array([1.0, 2.0, 3.0])
    one = np.ones(3)
    # launched with op 1, must be done before op 2: 2.5 s of comm beside 2 s of op 1
    st, en, cs, ce, _, _ = ov.sweep_window(d, one, one, np.array([2.5]), [1], [1])
    assert cs[0] == pytest.approx(st[0, 1])
    assert ce[0] == pytest.approx(3.5)
    assert st[0, 2] == pytest.approx(3.5)             # consumer starts after the collective
    assert en[0, -1] == pytest.approx(6.5)
    # contention: both at half speed while overlapped
    two = 2 * one
    st, en, cs, ce, ex, cex = ov.sweep_window(d, two, two, np.array([2.5]), [1], [1])
    # op 1 (2 s solo) takes 4 s beside it, the collective did 2 s of its 2.5 s, then 0.5 s alone
    assert en[0, 1] == pytest.approx(5.0)
    assert ce[0] == pytest.approx(5.5)
    assert st[0, 2] == pytest.approx(5.5)
    assert ex[0, 1] == pytest.approx(2.0)
    assert cex[0] == pytest.approx(2.0)


def test_sweep_with_an_early_ready_collective_and_host_dispatch():
    d = np.array([1.0, 1.0, 1.0])
    one = np.ones(3)
    ready = np.array([0.0, 1.5, 2.0])     # op 1 launched late: the GPU idles 0.5 s
    st, en, cs, ce, _, _ = ov.sweep_window(d, one, one, np.array([3.0]), [2], [2], ready,
                                           np.array([0.2]))
    assert st[0, 1] == pytest.approx(1.5)
    assert cs[0] == pytest.approx(0.2)
    assert ce[0] == pytest.approx(3.2)
    assert en[0, -1] == pytest.approx(3.5)


def test_params_roundtrip_and_version_check():
    from gearshift.errors import ConfigError

    q = Q.with_(slow_compute=0.7)
    assert ov.OverlapParams.from_json(q.to_json()) == q
    with pytest.raises(ConfigError):
        ov.OverlapParams.from_json({**q.to_json(), "version": 99})


def _ar_trace(world: int, payload: float = 32 * 2**20):
    from gearshift.model import KernelRecord, KernelTrace

    ks = [KernelRecord("gemm", flops=2 * 4096.0 ** 3, bytes_read=1e8),
          KernelRecord("ar", kind="comm", comm_op="all_reduce", comm_bytes=payload),
          KernelRecord("gemm2", flops=2 * 4096.0 ** 3, bytes_read=1e8)]
    return ks, KernelTrace(ks, source="synthetic", meta={"world_size": world})


def test_the_simulated_a100_runs_one_comm_kernel_law_for_every_collective():
    """Every collective follows overlap.comm_time_s with NCCL's figures: few CTAs of 512
    threads are slower than of 1024, and the measured serial time is exactly the law's."""
    from gearshift.devices.sim import SimDevice
    from gearshift.model import KernelTrace, Overlap, Partitioning

    ks, tr = _ar_trace(2)
    part = Partitioning.from_cuts(tr, [0])
    dev = SimDevice("a100-sxm", power_cap=False)

    def t(o):
        return dev.run_iteration(tr, part, [(1410, o)], advance=False).time_s

    serial_512 = t(Overlap("serial", comm_sms=4, block_size=512))
    serial_1024 = t(Overlap("serial", comm_sms=4, block_size=1024))
    assert serial_512 > serial_1024
    q = ov.library_params(dev.preset)
    lb = ov.link_bytes(32 * 2**20, "all_reduce", 2)
    want = ov.comm_time_s(q, lb, 4, 1024, 1410, 1410,
                          latency_s=ov.library_latency_s(ov.ring_steps("all_reduce", 2)))
    # serial: the two GEMMs plus the collective alone
    no_comm = dev.run_iteration(KernelTrace([ks[0], ks[2]], source="synthetic"),
                                Partitioning.from_cuts(KernelTrace([ks[0], ks[2]],
                                                                   source="synthetic"), [0]),
                                [(1410, Overlap("none"))], advance=False).time_s
    launch_s = dev.preset.launch_s
    assert serial_1024 - no_comm == pytest.approx(want + launch_s, rel=1e-6)


@pytest.mark.parametrize("preset", ["a100-sxm", "h100-sxm", "a40"])
def test_the_library_default_is_the_same_kernel_at_its_default_ctas_and_block(preset):
    """sms=0 (the library's default) is the collective at comm_sms_default CTAs of NCCL's 512
    threads: one model, not two. Time and energy agree exactly, serial and overlapped."""
    from gearshift.devices.sim import SimDevice
    from gearshift.model import Overlap, Partitioning

    _, tr = _ar_trace(8)
    part = Partitioning.from_cuts(tr, [0])
    dev = SimDevice(preset, power_cap=False)
    n = dev.preset.comm_sms_default
    for kind in ("serial", "window0-99"):
        a = dev.run_iteration(tr, part, [(dev.preset.max_freq_mhz, Overlap.parse(kind))],
                              advance=False)
        b = dev.run_iteration(tr, part, [(dev.preset.max_freq_mhz,
                                          Overlap.parse(f"{kind}/sms={n}/block=512"))],
                              advance=False)
        assert a.time_s == pytest.approx(b.time_s, rel=1e-12)
        assert a.energy_j == pytest.approx(b.energy_j, rel=1e-12)
    # and more CTAs than the default are faster, fewer slower (serial)
    t = [dev.run_iteration(tr, part, [(dev.preset.max_freq_mhz,
                                       Overlap.parse(f"serial/sms={s}"))],
                             advance=False).time_s
         for s in (n // 2, n, 2 * n)]
    assert t[0] > t[1] > t[2]


# Published all-reduce bus bandwidth of NCCL on A100 NVLink, large messages (busbw = payload /
# time x 2(n-1)/n): ~200 GB/s on 8 x A100-SXM4 (NVIDIA/nccl-tests#149) and 208 GB/s on 2 A100s
# over 12 NVLinks (NVIDIA/nccl-tests#178). Tolerance 10 %.
A100_BUSBW_GBS = {8: 200.0, 2: 208.0}


@pytest.mark.parametrize("world", [2, 8])
def test_the_a100_library_all_reduce_matches_published_nccl_tests(world):
    from gearshift.devices.sim.presets import get_preset

    p = get_preset("a100-sxm")
    q = ov.library_params(p)
    sizes = np.array([2.0 ** k for k in range(10, 31, 2)])       # 1 KiB .. 1 GiB
    lb = ov.link_bytes(sizes, "all_reduce", world)
    t = ov.comm_time_s(q, lb, p.comm_sms_default, ov.NCCL_BLOCK_THREADS, 1410, 1410,
                       latency_s=ov.library_latency_s(ov.ring_steps("all_reduce", world)))
    busbw = lb / t / 1e9
    assert np.all(np.diff(busbw) > 0)                 # latency-bound small, bandwidth-bound big
    big = sizes >= 256 * 2**20
    assert np.all(np.abs(busbw[big] / A100_BUSBW_GBS[world] - 1.0) <= 0.10), busbw[big]
    assert busbw[sizes == 2.0 ** 10][0] < 1.0         # 1 KiB: latency (tens of us) dominates
