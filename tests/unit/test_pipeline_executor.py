"""Pipeline executor: hand-computed tiny pipelines, orders, and the CLI contract."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import ConfigError, FormatError
from gearshift.pipeline import (PipelinePlan, StageProfile, dependencies, execute,
                                execute_sequences, pipeline_order)
from gearshift.pipeline.executor import graph_for

# stage 0: F 1 s, B 2 s; stage 1: F 1.5 s, B 3 s; energy 10 J per second of compute
T = np.array([[[1.0, 1.0], [2.0, 2.0]], [[1.5, 1.5], [3.0, 3.0]]])


def tiny_profile(scale_fast: float = 1.0) -> StageProfile:
    recs = []
    for s in range(2):
        for k, name in enumerate(("forward", "backward")):
            t = T[s, k, 0]
            recs.append((s, name, 1000, t, 10 * t))
            recs.append((s, name, 2000, t * scale_fast, 12 * t * scale_fast))
    return StageProfile.from_records(recs)


def test_orders_1f1b_and_gpipe():
    assert pipeline_order("1f1b", 2, 2) == [[(0, 0), (0, 1), (1, 0), (1, 1)],
                                            [(0, 0), (1, 0), (0, 1), (1, 1)]]
    assert pipeline_order("gpipe", 2, 2) == [[(0, 0), (0, 1), (1, 0), (1, 1)]] * 2
    # 8 stages: stage 0 warms up with 7 forwards then alternates, as the measured A40 runs do
    o = pipeline_order("1f1b", 8, 32)
    letters = "".join("FB"[k] for k, _ in o[0])
    assert letters == "F" * 8 + "BF" * 24 + "B" * 8
    assert "".join("FB"[k] for k, _ in o[7]) == "FB" * 32
    # fewer microbatches than stages: warm-up is capped
    assert "".join("FB"[k] for k, _ in pipeline_order("1f1b", 4, 2)[0]) == "FFBB"


def test_dependencies():
    d = dependencies(pipeline_order("1f1b", 2, 2))
    assert d[(1, 0, 0)] == [(0, 0, 0)]
    assert set(d[(0, 1, 0)]) == {(0, 0, 1), (1, 1, 0)}
    assert set(d[(1, 1, 1)]) == {(1, 0, 1)}    # program order and own forward coincide


def test_hand_computed_1f1b():
    g = graph_for("1f1b", 2, 2)
    r = g.run(T, 10 * T, blocking_power_w=5.0)
    # s0: F0 [0,1] F1 [1,2]; s1: F0 [1,2.5] B0 [2.5,5.5] F1 [5.5,7] B1 [7,10];
    # s0: B0 [5.5,7.5] B1 [10,12]
    assert r.time_s == 12.0
    assert r.start_s.tolist() == [[[0.0, 1.0], [5.5, 10.0]], [[1.0, 5.5], [2.5, 7.0]]]
    assert r.busy_s.tolist() == [6.0, 9.0]
    assert r.compute_energy_j == 150.0
    assert r.blocking_energy_j == 5.0 * ((12 - 6) + (12 - 9))
    assert r.energy_j == 195.0
    assert r.source == "simulated"


def test_hand_computed_gpipe_differs_in_timing():
    r = graph_for("gpipe", 2, 2).run(T, 10 * T, blocking_power_w=0.0)
    # s1: F0 [1,2.5] F1 [2.5,4] B0 [4,7] B1 [7,10]; s0: B0 [7,9] B1 [10,12]
    assert r.start_s[1].tolist() == [[1.0, 2.5], [4.0, 7.0]]
    assert r.start_s[0, 1].tolist() == [7.0, 10.0]
    assert r.time_s == 12.0 and r.energy_j == 150.0


def test_p2p_delay_on_stage_edges_only():
    r = graph_for("1f1b", 2, 2).run(T, 10 * T, 0.0, p2p_s=0.5)
    # every stage-crossing edge pays 0.5 s: s1 F0 at 1.5, B0 ends 6, s0 B0 starts 6.5 ...
    assert r.start_s[1, 0, 0] == 1.5
    assert r.start_s[0, 1, 0] == 6.5
    assert r.time_s == 13.0


def test_execute_with_profile_and_plan():
    prof = tiny_profile(scale_fast=0.5)
    slow = execute(prof, PipelinePlan.uniform(2, 2, 1000), "1f1b", 2, 2, 5.0)
    assert (slow.time_s, slow.energy_j) == (12.0, 195.0)
    fast = execute(prof, PipelinePlan.uniform(2, 2, 2000), "1f1b", 2, 2, 5.0)
    assert fast.time_s == 6.0
    assert fast.compute_energy_j == pytest.approx(1.2 * 150 * 0.5)
    assert fast.blocking_energy_j == pytest.approx(5.0 * (3 + 1.5))


def test_execute_sequences_matches_execute():
    prof = tiny_profile(0.5)
    rng = np.random.default_rng(1)
    freq = rng.choice([1000, 2000], size=(2, 2, 2))
    a = execute(prof, PipelinePlan(freq), "1f1b", 2, 2, 7.0)
    order = pipeline_order("1f1b", 2, 2)
    seqs = ["".join("FB"[k] for k, _ in o) for o in order]
    fs = [[int(freq[s, k, m]) for k, m in o] for s, o in enumerate(order)]
    b = execute_sequences(prof, seqs, fs, 7.0)
    assert (a.time_s, a.energy_j) == (b.time_s, b.energy_j)


def test_batch_makespans_match_single_runs():
    g = graph_for("1f1b", 4, 6)
    rng = np.random.default_rng(0)
    t = rng.uniform(0.5, 2.0, size=(5, 4, 2, 6))
    ms = g.makespans(t, p2p_s=0.01)
    for i in range(5):
        assert ms[i] == pytest.approx(g.schedule(t[i], 0.01)[1].max())


def test_makespan_lower_bounds():
    """The makespan is at least every stage's busy time and the critical path of microbatch 0."""
    rng = np.random.default_rng(3)
    for kind in ("1f1b", "gpipe"):
        t = rng.uniform(0.1, 1.0, size=(5, 2, 7))
        r = graph_for(kind, 5, 7).run(t, t, 0.0)
        assert r.time_s >= t.sum(axis=(1, 2)).max() - 1e-12
        assert r.time_s >= t[:, :, 0].sum() - 1e-12
        assert np.all(r.end_s - r.start_s == pytest.approx(t))


def test_bad_shapes_and_kinds():
    with pytest.raises(ConfigError, match="at least one microbatch"):
        pipeline_order("1f1b", 2, 0)
    with pytest.raises(ConfigError, match="unknown pipeline kind"):
        pipeline_order("zigzag", 2, 2)
    with pytest.raises(ConfigError, match="deadlock"):
        execute_sequences(tiny_profile(), ["BF", "FB"], [[1000, 1000]] * 2, 0.0)
    with pytest.raises(FormatError, match="1500 MHz is not in the stage profile"):
        execute(tiny_profile(), PipelinePlan.uniform(2, 2, 1500), "1f1b", 2, 2, 0.0)
    with pytest.raises(FormatError, match="2 stages x 2 microbatches, not 2 x 3"):
        execute(tiny_profile(), PipelinePlan.uniform(2, 2, 1000), "1f1b", 2, 3, 0.0)
