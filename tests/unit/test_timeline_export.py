"""`gearshift run --timeline-out`: the last iteration as Chrome trace events (issue #13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.devices.sim import SimDevice
from gearshift.model import KernelTrace, Partitioning, Schedule


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    main(["trace", "--model", "gpt-tiny-tp2", "--nanobatches", "2", "-o", str(d / "t.json")])
    main(["partition", str(d / "t.json"), "-o", str(d / "p.json"), "--min-partition-ms", "0",
          "--show", "0"])
    main(["profile", str(d / "t.json"), str(d / "p.json"), "-o", str(d / "prof.json"),
          "--preset", "a100-sxm", "--freq-step", "120", "--quiet"])
    main(["plan", "--profile", str(d / "prof.json"), "--partitioning", str(d / "p.json"),
          "--trace", str(d / "t.json"), "--schedule-out", str(d / "s.json"), "--quiet"])
    return d


def test_timeline_out_is_chrome_trace_of_the_last_iteration(planned, capsys):
    d = planned
    out = d / "timeline.json"
    main(["run", str(d / "s.json"), "--trace", str(d / "t.json"), "--preset", "a100-sxm",
          "-n", "2", "--quiet", "--timeline-out", str(out)])
    assert "timeline of the last iteration (simulated)" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    trace = KernelTrace.load(d / "t.json")
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == len(trace)                                  # one event per kernel
    assert sorted(e["args"]["id"] for e in xs) == list(range(len(trace)))
    for e in xs:
        assert set(e["args"]) >= {"id", "deps", "kind", "partition", "freq_mhz"}
        assert e["args"]["kind"] == trace.kernels[e["args"]["id"]].kind
        assert (e["tid"] == 1) == (e["args"]["kind"] == "comm")
    tracks = {(e["pid"], e["tid"]) for e in xs}
    assert tracks == {(0, 0), (0, 1)}                             # a track per stream per GPU
    # the span equals the iteration time: that of the same schedule re-run on a fresh device
    # after one iteration (the run's last iteration starts from the schedule's last clock)
    span_us = max(e["ts"] + e["dur"] for e in xs) - min(e["ts"] for e in xs)
    sched = Schedule.load(d / "s.json")
    dev = SimDevice("a100-sxm")
    parts = Partitioning.load(d / "p.json")
    dev.run_iteration(trace, parts, sched)
    again = dev.run_iteration(trace, parts, sched)
    assert span_us == pytest.approx(again.time_s * 1e6, rel=1e-9)
    assert doc["otherData"]["time_s"] == pytest.approx(again.time_s, rel=1e-9)
    # the events themselves respect data flow and stream order
    end = {e["args"]["id"]: e["ts"] + e["dur"] for e in xs}
    for e in xs:
        for dep in e["args"]["deps"]:
            assert e["ts"] >= end[dep] - 1e-6
    for track in tracks:
        ev = sorted((e["ts"], e["ts"] + e["dur"]) for e in xs if (e["pid"], e["tid"]) == track)
        starts, ends = np.array([a for a, _ in ev]), np.array([b for _, b in ev])
        assert np.all(starts[1:] >= ends[:-1] - 1e-6)
    # the clocks are the schedule's (after the power limit)
    freqs = {e["args"]["partition"]: e["args"]["requested_freq_mhz"] for e in xs}
    assert [freqs[p] for p in sorted(freqs)] == sched.freqs_mhz()
