"""The fake GPU plays the overlap the program applied: its timeline is the simulator's
dependency-true overlap model for that option (a nanobatched tensor-parallel step)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gearshift.devices.fake_gpu import FakeGpuDevice  # noqa: E402
from gearshift.model import NO_OVERLAP, Overlap, Partitioning, Schedule  # noqa: E402
from gearshift.model.schedule import ScheduleEntry  # noqa: E402


@pytest.fixture(scope="module")
def tp_trace():
    from gearshift.trace import trace_preset

    return trace_preset("gpt-tiny-tp2", nanobatches=2)


def _recorded(dev):
    """The CUPTI trace a record session makes of the attached step (what schedules name)."""
    from gearshift.runtime import Session

    s = Session(mode="record", **dev.session_options()).start()
    try:
        s.step()
        dev.play_step(s)
        return s.to_trace(-1, model="tp", device=dev.facts.name)
    finally:
        s.close()


def _schedule(dev, trace, cuts, overlaps):
    parts = Partitioning.from_cuts(trace, cuts)
    top = dev.facts.max_freq_mhz
    entries = [ScheduleEntry(p.index, p.start, top, ov, signature=p.signature)
               for p, ov in zip(parts.partitions, overlaps)]
    return parts, Schedule(entries, trace.signature(), dev.facts.name, len(trace),
                           objective="test", nanobatches=trace.nanobatches)


def _play(dev, schedule, overlaps, steps=3):
    from gearshift.runtime import Session

    s = Session(schedule, trace=dev.recorded, **dev.session_options()).start()
    try:
        out = []
        for _ in range(steps):
            s.step()
            out.append(dev.play_step(s, schedule, overlaps))
        return out
    finally:
        s.close()


def test_the_step_plays_the_applied_overlap_as_the_simulator_runs_it(tp_trace):
    dev = FakeGpuDevice("h100-sxm", switch_latency_s=0.0, noise_rel=0.0)
    dev.attach(tp_trace)
    dev.recorded = _recorded(dev)
    comm = [i for i, k in enumerate(tp_trace.kernels) if k.kind == "comm"]
    cuts = [0] + comm[::4]                      # a few partitions, each opening at a collective
    window = Overlap.parse("window0-99")
    ovs = [NO_OVERLAP] + [window if j % 2 == 0 else NO_OVERLAP for j in range(len(cuts) - 1)]
    _, sched = _schedule(dev, dev.recorded, cuts, ovs)
    parts = Partitioning.from_cuts(tp_trace, cuts)

    e0 = dev.nvml.exact_j()
    played = _play(dev, sched, ovs)[-1]
    step_j = (dev.nvml.exact_j() - e0) / 3
    times = np.diff(list(played.boundary_s) + [played.end_s])
    want = dev.sim.timeline(tp_trace, parts).run(
        np.full(len(parts), dev.facts.max_freq_mhz), ovs, switch_latency_s=0.0)
    assert times == pytest.approx(want.partition_time_s, rel=1e-6, abs=2e-9)
    assert step_j == pytest.approx(want.energy_j, rel=1e-6)

    # the schedule's overlap column alone is not played: a step the pass left serial runs serial
    serial = _play(dev, sched, None)[-1]
    serial_t = np.diff(list(serial.boundary_s) + [serial.end_s])
    base = dev.sim.timeline(tp_trace, parts).run(
        np.full(len(parts), dev.facts.max_freq_mhz), [NO_OVERLAP] * len(parts),
        switch_latency_s=0.0)
    assert serial_t == pytest.approx(base.partition_time_s, rel=1e-6, abs=2e-9)
    # the windows hid communication behind the other nanobatch's compute: those partitions
    # are shorter, the serial ones unchanged
    for i, ov in enumerate(ovs):
        if ov is window:
            assert times[i] < 0.95 * serial_t[i]
        else:
            assert times[i] == pytest.approx(serial_t[i], rel=1e-9, abs=2e-9)
    # and no data dependency was broken in the played timeline
    from gearshift.devices.sim.timeline import dependency_violations

    assert dependency_violations([k.deps for k in tp_trace.kernels], want.kernel_stream,
                                 want.kernel_start_s, want.kernel_end_s) == []


def test_overlaps_must_match_the_partitions(tp_trace):
    dev = FakeGpuDevice("h100-sxm", switch_latency_s=0.0)
    dev.attach(tp_trace)
    dev.recorded = _recorded(dev)
    _, sched = _schedule(dev, dev.recorded, [0], [NO_OVERLAP])
    with pytest.raises(ValueError, match="2 overlaps for 1 partitions"):
        _play(dev, sched, [NO_OVERLAP, NO_OVERLAP], steps=1)
