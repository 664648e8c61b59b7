"""The runtime end to end through the bindings, on the fake CUPTI + fake device path."""

import warnings

import pytest

from gearshift import _native
from gearshift.errors import (ConfigError, ScheduleMismatchError, UnsupportedClockError)
from gearshift.model import KernelRecord, KernelTrace, Partitioning
from gearshift.model.schedule import Schedule, ScheduleEntry
from gearshift.runtime import Session, make_backend

CLOCKS = [1980, 1755, 1500, 1200, 1005]


def make_trace(n=12, dur_us=None):
    ks = [KernelRecord(name=f"gemm_{i % 5}", stream=7, grid=(8, 1, 1), block=(128, 1, 1),
                       duration_s=(dur_us[i] if dur_us else (i + 1)) * 1e-6) for i in range(n)]
    return KernelTrace(ks, model="toy", source="synthetic")


def make_schedule(trace, cuts, freqs):
    parts = Partitioning.from_cuts(trace, cuts)
    entries = [ScheduleEntry(p.index, p.start, f, signature=p.signature)
               for p, f in zip(parts.partitions, freqs)]
    return Schedule(entries, trace.signature(), "sim", len(trace))


def test_sim_session_enforces_schedule_end_to_end():
    trace = make_trace()
    sched = make_schedule(trace, [0, 4, 9], [1500, 1005, 1755])
    with Session(sched, backend=make_backend("sim", supported_mhz=CLOCKS), trace=trace) as s:
        events = s.replay(trace, iterations=2)
        switched = [e for e in events if e.action == "switched"]
        assert [e.ordinal for e in switched] == [0, 4, 9, 0, 4, 9]
        assert [e.freq_mhz for e in switched] == [1500, 1005, 1755] * 2
        # device time at each switch = sum of the durations of the kernels before it
        iter_s = sum(k.duration_s for k in trace.kernels)
        want = [0.0, 10e-6, 45e-6, iter_s, iter_s + 10e-6, iter_s + 45e-6]
        assert [e.device_time_s for e in switched] == pytest.approx(want, abs=1e-12)
        assert all(e.latency_us is not None and e.latency_us >= 0 for e in switched)
        assert s.current_mhz == 1755
        assert s.mismatch_reason is None
    clock = s.clock_events()
    assert clock[-1].reset and s.backend.current_mhz(0) == 1980


def test_mismatch_stops_switching_restores_and_warns():
    trace = make_trace()
    sched = make_schedule(trace, [0, 4, 9], [1500, 1005, 1755])
    other = make_trace()
    other.kernels[5].name = "flash_attn_fwd"
    with pytest.warns(RuntimeWarning, match=r"partition 1: kernel names differ"):
        with Session(sched, backend=make_backend("sim", supported_mhz=CLOCKS), trace=trace) as s:
            s.replay(trace)
            s.replay(other)
            n = len(s.clock_events())
            s.replay(trace)
            assert len(s.clock_events()) == n, "no switching after a mismatch"
    assert s.backend.current_mhz(0) == 1980
    assert "partition 1" in s.mismatch_reason


def test_kernel_count_mismatch_without_trace_explicit_steps():
    trace = make_trace()
    sched = make_schedule(trace, [0, 6], [1500, 1005])
    short = make_trace(11)
    with pytest.warns(RuntimeWarning, match="launched 11 kernels, the schedule expects 12"):
        with Session(sched, backend=make_backend("sim", supported_mhz=CLOCKS), auto_wrap=False) as s:
            s.replay(trace, step=True)
            s.replay(short, step=True)
            s.step()


def test_schedule_for_another_model_is_refused():
    trace = make_trace()
    sched = make_schedule(trace, [0, 4], [1500, 1005])
    with pytest.raises(ScheduleMismatchError, match="made for another model"):
        Session(sched, backend=make_backend("sim"), trace=make_trace(13)).start()


def test_unsupported_clock_refused_before_anything_runs():
    trace = make_trace()
    sched = make_schedule(trace, [0, 4], [1500, 1234])
    with pytest.raises(UnsupportedClockError, match="1234 MHz"):
        Session(sched, backend=make_backend("sim", supported_mhz=CLOCKS)).start()


def test_exception_inside_session_restores_clocks():
    trace = make_trace()
    sched = make_schedule(trace, [0, 4], [1500, 1005])
    s = Session(sched, backend=make_backend("dry-run", supported_mhz=CLOCKS), signal_path="fake-lockstep",
                watchdog=False)
    with pytest.raises(ZeroDivisionError):
        with s:
            s.replay(trace)
            assert s.current_mhz == 1005
            1 / 0
    ev = s.clock_events()
    assert [e.freq_mhz for e in ev if not e.reset] == [1500, 1005]
    assert ev[-1].reset


def test_record_mode_gives_a_trace_with_ordinals_per_iteration():
    trace = make_trace(6)
    with Session(None, backend=make_backend("sim"), mode="record") as s:
        s.replay(trace, iterations=2, step=True)
        recs = s.records(iteration=1)
        assert [r.ordinal for r in recs] == list(range(6))
        assert set(recs[0].to_dict()) >= {"ordinal", "name", "stream", "grid", "block",
                                          "timestamp_ns"}
        got = s.to_trace(iteration=1)
    assert got.names() == trace.names()
    assert got.kernels[0].grid == (8, 1, 1)


def test_markers_switch_when_cupti_is_not_used():
    trace = make_trace()
    sched = make_schedule(trace, [0, 4], [1500, 1005])
    with Session(sched, backend=make_backend("sim", supported_mhz=CLOCKS), use_cupti=False) as s:
        assert not s.cupti_active
        assert s.mark(0) and s.mark(1)
        s._rt.run_fake_device()
        assert [e.freq_mhz for e in s.switch_events() if e.action == "switched"] == [1500, 1005]


def test_busy_cupti_reported_and_markers_work_natively():
    C = _native.native()
    b = C.SimBackend(supported_mhz=CLOCKS)
    rt = C.Runtime(b, handle_signals=False)
    rt.start()
    rt.set_fake_cupti_busy(True)
    sub = rt.subscribe()
    assert not sub.active and sub.busy
    assert "another profiler holds CUPTI" in sub.error
    rt.install([0, 3], [1500, 1005], [], 6)
    rt.set_mode("apply")
    rt.mark(0)
    rt.fake_kernel(7000)
    rt.mark(1)
    rt.run_fake_device()
    assert [(e.t_ns, e.freq_mhz) for e in b.events()] == [(0, 1500), (7000, 1005)]
    rt.stop()


def test_double_counting_paths_through_bindings():
    C = _native.native()
    rt = C.Runtime(C.DryRunBackend(), handle_signals=False)
    rt.subscribe()
    rt.set_mode("record")
    apis = ["runtime", "runtime_ex", "runtime_internal", "driver", "driver_ex", "driver_ptsz"]
    rt.replay([(f"k{i}", 1, (1, 1, 1), (32, 1, 1), 0, a) for i, a in enumerate(apis)])
    st = rt.stats()
    assert st.launches == 6 and st.nested_skipped == 2
    assert [r.name for r in rt.records()] == [f"k{i}" for i in range(6)]
    rt.stop()


def test_bad_arguments_are_clear():
    C = _native.native()
    with pytest.raises(ValueError, match="trigger"):
        C.Runtime(C.DryRunBackend(), trigger="magic")
    with pytest.raises(ConfigError, match="signal path"):
        Session(None, mode="record", signal_path="carrier-pigeon")
    with pytest.raises(ConfigError, match="needs a schedule"):
        Session(None, backend=make_backend("sim"))
    rt = C.Runtime(C.DryRunBackend(), handle_signals=False)
    with pytest.raises(ValueError, match="unknown launch api"):
        rt.subscribe()
        rt.replay([("k", 0, None, None, 0, "warp-drive")])


def test_partition_hash_is_order_sensitive():
    C = _native.native()
    assert C.partition_hash(["a", "b"]) != C.partition_hash(["b", "a"])
    assert C.partition_hash(["a", "b"]) == C.partition_hash(["a", "b"])


def test_module_markers_from_forward_pre_hooks():
    torch = pytest.importorskip("torch")
    from gearshift.runtime import install_module_markers

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    trace = make_trace()
    sched = make_schedule(trace, [0, 6], [1500, 1005])
    with Session(sched, backend=make_backend("sim", supported_mhz=CLOCKS), use_cupti=False) as s:
        handles = install_module_markers(model, s, {"0": 0, "2": 1})
        model(torch.randn(3, 4))
        model(torch.randn(3, 4))
        s._rt.run_fake_device()
        acted = [(e.partition, e.action) for e in s.switch_events()]
        for h in handles:
            h.remove()
    assert acted == [(0, "switched"), (1, "switched"), (0, "switched"), (1, "switched")]
    with pytest.raises(ConfigError, match="modules not found"):
        install_module_markers(model, s, {"decoder": 0})


def test_real_signal_path_without_a_gpu_says_why(recwarn):
    from gearshift.runtime import session as session_mod

    session_mod._CUPTI_WARNED = False
    if _native.library_status("cuda")["loaded"]:
        pytest.skip("a CUDA driver is present: this checks the no-GPU messages")
    trace = make_trace()
    sched = make_schedule(trace, [0, 6], [1500, 1005])
    with Session(sched, backend=make_backend("dry-run", supported_mhz=CLOCKS), signal_path="cuda",
                 watchdog=False) as s:
        assert not s.cupti_active
        s.mark(0)
        s.mark(1)
        s.mark(0)
        assert s.stats()["dropped_posts"] == 3
    msgs = [str(w.message) for w in recwarn]
    assert any("CUPTI launch hook is unavailable" in m and "libcuda" in m for m in msgs), msgs
    assert any("boundary signals could not be enqueued (libcuda could not be opened" in m
               for m in msgs), msgs
