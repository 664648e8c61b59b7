"""Profiling: candidate options, per-partition entries, the measured path's energy split."""

import numpy as np
import pytest

from gearshift.devices import Capabilities
from gearshift.errors import ConfigError, DeviceError
from gearshift.model import NO_OVERLAP, DeviceFacts, KernelRecord, KernelTrace, Overlap, Partitioning
from gearshift.profile import candidate_freqs, profile_partitions
from gearshift.profile.measured import attribute_energy, profile_measured
from gearshift.profile.options import parse_overlaps
from gearshift.profile.progress import Progress

FACTS = DeviceFacts("Fake GPU", tuple(range(2000, 200, -100)), static_power_w=50, tdp_w=400)


def synthetic():
    ks = [KernelRecord("gemm_a", flops=1e9), KernelRecord("allreduce", kind="comm"),
          KernelRecord("gemm_b", flops=2e9), KernelRecord("gemm_c", flops=1e9)]
    tr = KernelTrace(ks, model="synthetic", source="synthetic")
    return tr, Partitioning.from_cuts(tr, [0, 1])


class FakeSim:
    """profile_options like the simulator: time ~ work/f (+ comm term), energy = P x t."""

    kind = "sim"
    name = "Fake GPU (simulated)"
    facts = FACTS
    capabilities = Capabilities(simulated=True, clock_control=True, energy_source="simulated")

    def __init__(self):
        self.calls = []

    def profile_options(self, trace, partitioning, options):
        self.calls.extend(options)
        t = np.zeros((len(options), len(partitioning)))
        for i, (f, ov) in enumerate(options):
            for p, part in enumerate(partitioning.partitions):
                work = sum((k.flops or 0) for k in trace.kernels[part.start:part.end]) / 1e9
                comm = 0.5 if part.has_comm else 0.0
                hide = 0.3 if (part.has_comm and ov.overlapped) else 0.0
                t[i, p] = work * 1000 / f + comm - hide
        return t, t * 200.0


def test_candidate_freqs_default_thinning_and_errors():
    assert candidate_freqs(FACTS)[0] == 2000 and min(candidate_freqs(FACTS)) >= 1000
    assert candidate_freqs(FACTS, step_mhz=300) == [2000, 1700, 1400, 1100]
    assert candidate_freqs(FACTS, [1500, 1900]) == [1900, 1500]
    with pytest.raises(ConfigError, match="not a supported SM clock"):
        candidate_freqs(FACTS, [1555])
    with pytest.raises(ConfigError, match="no supported clock"):
        candidate_freqs(FACTS, min_freq_mhz=5000)


def test_parse_overlaps_puts_serial_first_and_rejects_junk():
    assert parse_overlaps(["window0-3", "none"])[0] == Overlap("serial")
    with pytest.raises(ConfigError, match="not an overlap choice"):
        parse_overlaps(["sideways"])


def test_profile_on_simulated_device_covers_every_option():
    tr, parts = synthetic()
    dev = FakeSim()
    prof = profile_partitions(tr, parts, dev, freqs_mhz=[1900, 1500], overlaps=["window0-9"],
                              progress=False)
    assert prof.source == "simulated" and prof.num_partitions == 2
    assert prof.partitioning_signature == parts.signature()
    # partition 0 has no communication: one 'none' option per clock
    assert {(e.freq_mhz, e.overlap) for e in prof.options(0)} == {(1900, NO_OVERLAP),
                                                                 (1500, NO_OVERLAP)}
    # partition 1 holds the all-reduce: serial and the window at each clock, hiding visible
    opts = {(e.freq_mhz, e.overlap.key()): e for e in prof.options(1)}
    w = "window0-9"
    assert set(opts) == {(1900, "serial"), (1900, w), (1500, "serial"), (1500, w)}
    assert opts[(1900, w)].time_s < opts[(1900, "serial")].time_s
    assert opts[(1500, "serial")].time_s > opts[(1900, "serial")].time_s
    assert prof.extra["default_overlap"] == "serial"     # Megatron's default, baseline (a)
    assert len(dev.calls) == 4


def test_profile_real_gpu_without_step_is_a_clear_error():
    tr, parts = synthetic()

    class Real:
        kind, name, facts = "nvml", "GPU", FACTS
        capabilities = Capabilities(simulated=False, clock_control=True,
                                    energy_source="measured", needs_step=True)

    with pytest.raises(ConfigError, match="needs the training step"):
        profile_partitions(tr, parts, Real(), progress=False)


def test_attribute_energy_follows_sampled_power_and_keeps_the_total():
    marks = [[0.0, 1.0, 3.0], [3.0, 4.0, 6.0]]
    t = np.linspace(0, 6, 601)
    w = np.where((t % 3) < 1, 300.0, 100.0)     # partition 0 draws 3x the power
    e = attribute_energy(marks, t, w, total_energy_j=1000.0)
    assert e.sum() == pytest.approx(1000.0)
    assert e[0] / e[1] == pytest.approx(1.5, rel=0.05)   # 300 W x 1 s vs 100 W x 2 s
    # without samples the split falls back to time shares
    assert attribute_energy(marks, np.array([]), np.array([]), 90.0) == pytest.approx([30, 60])
    with pytest.raises(DeviceError):
        attribute_energy([[0.0, 2.0, 1.0]], t, w, 1.0)


def test_measured_path_locks_each_clock_and_always_resets():
    events = []

    class Gpu:
        name, facts = "GPU", FACTS
        e = 0.0

        def set_sm_clock(self, f):
            events.append(("set", f))
            self.f = f

        def reset_sm_clock(self):
            events.append(("reset",))

        def energy_j(self):
            return self.e

    gpu = Gpu()
    clock = [0.0]

    def step():
        gpu.e += 100.0 * 1000 / gpu.f
        clock[0] += 1.0

    def marks():
        return [clock[0] - 1.0, clock[0] - 0.5, clock[0]]

    entries = profile_measured(2, [False, True], gpu, [1000, 500], step, marks,
                               Progress(False), iterations=2, warmup=1)
    assert [ev for ev in events if ev[0] == "set"] == [("set", 1000), ("set", 500)]
    assert events[-1] == ("reset",)
    by = {(e.partition, e.freq_mhz): e for e in entries}
    assert by[(0, 1000)].energy_j == pytest.approx(50.0)     # half the time -> half the energy
    assert by[(1, 500)].overlap == Overlap("serial")
    events.clear()
    with pytest.raises(DeviceError, match="marks"):
        profile_measured(2, [False, False], gpu, [1000], step, lambda: [0.0, 1.0],
                         Progress(False), iterations=1, warmup=0)
    assert events[-1] == ("reset",)
