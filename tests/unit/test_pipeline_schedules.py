"""Every torch.distributed.pipelining schedule as a pipeline DAG: orders, dependencies, I/W."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import ConfigError, FormatError
from gearshift.pipeline import PipelinePlan, StageProfile, execute
from gearshift.pipeline.executor import PipelineGraph, graph_for
from gearshift.pipeline.order import (B, F, I, KINDS, W, data_pred, dependencies,
                                      pipeline_order, schedule_order)

pytest.importorskip("torch.distributed.pipelining")

SHAPES = {"1f1b": (4, 8, None), "gpipe": (4, 8, None), "interleaved-1f1b": (4, 8, 2),
          "looped-bfs": (4, 8, 2), "zb-interleaved": (4, 8, 2), "zbv": (4, 8, 2),
          "dualpipev": (4, 8, 2)}


def profile(stages: int, split: bool = False) -> StageProfile:
    recs = []
    rng = np.random.default_rng(stages)
    names = ("forward", "backward") + (("backward_input", "backward_weight") if split else ())
    for s in range(stages):
        base = rng.uniform(0.8, 1.2)
        for k, name in enumerate(names):
            t = base * (1.0, 2.0, 1.1, 0.9)[k]
            for f in (1000, 1500, 2000):
                recs.append((s, name, f, t * 2000 / f, 100 * t * (f / 2000) ** 1.5))
    return StageProfile.from_records(recs)


def test_1f1b_and_gpipe_are_torchs_orders():
    """torch's IR of its single-stage schedules (a visualisation aid) skips F0 on the last rank
    of 1F1B; the other ranks match, and the distributed test checks what actually runs."""
    from gearshift.pipeline.schedules import torch_order

    for kind, cls in (("1f1b", "Schedule1F1B"), ("gpipe", "ScheduleGPipe")):
        for s, n in ((4, 8), (8, 8), (3, 12)):
            ops, stage_rank = torch_order(cls, s, 1, n)
            mine = pipeline_order(kind, s, n)
            last = s if kind == "gpipe" else s - 1
            assert ops[:last] == [[(r, k, m) for k, m in seq]
                                  for r, seq in enumerate(mine)][:last]
            assert stage_rank == list(range(s))


@pytest.mark.parametrize("kind", KINDS)
def test_every_schedule_builds_a_valid_dag(kind):
    s, n, v = SHAPES[kind]
    so = schedule_order(kind, s, n, v)
    g = PipelineGraph(so)
    assert g.ranks == s and g.stages == s * (v or 1)
    assert g.kinds == (4 if kind in ("zb-interleaved", "zbv", "dualpipev") else 2)
    # every model stage on one rank, every op on its stage's rank
    for r, ops in enumerate(so.rank_ops):
        assert all(so.stage_rank[st] == r for st, _, _ in ops)
    rng = np.random.default_rng(0)
    t = np.where(g.used(), rng.uniform(0.5, 1.5, size=g.shape), 0.0)
    start, end = g.schedule(t)
    preds = dependencies(so)
    for op, ps in preds.items():
        for p in ps:      # every dependency holds: program order and data (send/receive)
            assert start[op] >= end[p] - 1e-12
    # makespan bounds: each rank's busy time, and microbatch 0's forward+backward chain
    r = g.run(t, t, 0.0)
    assert r.time_s >= g.rank_busy(t).max() - 1e-12
    chain = t[:, F, 0].sum() + sum(t[st, B, 0] if t[st, B, 0] > 0 else t[st, I, 0]
                                   for st in range(g.stages))
    assert r.time_s >= chain - 1e-12


def test_zero_bubble_w_waits_for_its_i_and_feeds_nothing():
    so = schedule_order("zbv", 2, 4)
    d = dependencies(so)
    ws = [op for op in d if op[1] == W]
    assert ws and all((op[0], I, op[2]) in d for op in ws)
    # the gradient received from the next stage comes from its I (or B), never from a W
    grad = {(s, m): k for s, k, m in d if k in (B, I)}
    for op in d:
        if op[1] in (B, I) and op[0] < 3:
            src = data_pred(op, 4, lambda s, m: grad[(s, m)])
            assert src[0] == op[0] + 1 and src[1] in (B, I) and src in d


def test_v_schedules_keep_the_turn_on_one_rank():
    # ZBV: stages 1 and 2 of a 2-rank V sit on rank 1, so F(1)->F(2) pays no transfer
    g = graph_for("zbv", 2, 4)
    assert g.stage_rank.tolist() == [0, 1, 1, 0]
    t = np.where(g.used(), 1.0, 0.0)
    a = g.schedule(t, p2p_s=0.0)[0]
    b = g.schedule(t, p2p_s=0.25)[0]
    assert b[2, F, 0] - a[2, F, 0] == pytest.approx(0.25)   # one hop (0 -> 1) before it
    assert b[3, F, 0] - a[3, F, 0] == pytest.approx(0.5)    # two hops


def test_split_is_derived_from_backward_when_absent():
    p = profile(2)
    q = p.with_split()
    assert q.split == "derived" and q.time_s.shape[1] == 4
    assert np.allclose(q.time_s[:, I], p.time_s[:, B] / 2)
    assert np.allclose(q.energy_j[:, W], p.energy_j[:, B] / 2)
    m = profile(2, split=True)
    assert m.split == "measured" and m.with_split() is m


def test_zero_bubble_plan_round_trip(tmp_path):
    prof = profile(8, split=True)
    g = graph_for("zb-interleaved", 4, 8, 2)
    plan = PipelinePlan.uniform(8, 8, 1500, g)
    res = execute(prof, plan, "zb-interleaved", 4, 8, 10.0, virtual_stages=2)
    plan.save(tmp_path / "p.csv")
    text = (tmp_path / "p.csv").read_text()
    assert "backward_input" in text and "backward_weight" in text
    again = PipelinePlan.load(tmp_path / "p.csv", 8, 8)
    res2 = execute(prof, again, "zb-interleaved", 4, 8, 10.0, virtual_stages=2)
    assert (res.time_s, res.energy_j) == (res2.time_s, res2.energy_j)
    # blocking is charged per rank (4 GPUs), not per model stage
    assert res.blocking_energy_j == pytest.approx(10.0 * (4 * res.time_s - res.busy_s.sum()))
    # a plan without I/W cannot run a zero-bubble schedule
    with pytest.raises(FormatError, match="no backward_input"):
        execute(prof, PipelinePlan.uniform(8, 8, 1500), "zb-interleaved", 4, 8, 10.0,
                virtual_stages=2)


def test_rank_profile_is_split_over_virtual_stages():
    prof = profile(4)
    g = graph_for("interleaved-1f1b", 4, 8, 2)
    per_stage = prof.for_stages(8, g.stage_rank)
    assert np.allclose(per_stage.time_s[5], prof.time_s[1] / 2)
    with pytest.raises(FormatError, match="one per model stage"):
        profile(3).for_stages(8, g.stage_rank)


def test_bad_virtual_stages_and_microbatches():
    with pytest.raises(ConfigError, match="zbv runs 2 stage"):
        schedule_order("zbv", 4, 8, 3)
    with pytest.raises(ConfigError, match="1f1b runs 1 stage"):
        schedule_order("1f1b", 4, 8, 2)
    with pytest.raises(ConfigError, match="refuses"):
        schedule_order("interleaved-1f1b", 4, 9, 2)      # 9 is not a multiple of 2 rounds


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("1f1b", "gpipe")])
def test_orders_skip_the_comms_lowering_but_not_a_single_action(kind, monkeypatch):
    """The planner builds torch's schedules without lowering them to send/recv actions; the
    compute actions are those of the unmodified torch class."""
    from gearshift.pipeline import schedules
    from gearshift.pipeline.order import SCHEDULES

    cls = SCHEDULES[kind][0]
    ranks, n, v = SHAPES[kind]
    quick = schedules.torch_order(cls, ranks, v, n + 4)
    monkeypatch.setattr(schedules, "_compute_only", lambda c: c)
    assert quick == schedules.torch_order(cls, ranks, v, n + 4)
