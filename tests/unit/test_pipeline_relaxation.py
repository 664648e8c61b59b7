"""The pipeline relaxation by network simplex (csrc/pipeline/tradeoff.cpp), the planner's fast
paths around it, and the frontier's quality against the references of the planner before it.

The network simplex must give HiGHS's optimum at every T (in any order of T, warm from saved
bases) and a primal solution that attains it; the fast re-score and round-down must equal the
executor and the Python loop exactly; the frontier must stay as good as the reference frontier
of commit 79550d7 (HiGHS LP), judged by re-scored points (pipeline_quality).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import GearshiftError
from gearshift.pipeline import StageProfile
from gearshift.pipeline.executor import graph_for
from gearshift.search.pipeline import start_search
from gearshift.search.pipeline_lp import _Relaxation, relaxation, round_down
from gearshift.search.pipeline_problem import PipelineProblem
from gearshift.search.pipeline_quality import compare, lower_hull_at, read_reference

REF = Path(__file__).parent / "data" / "pipeline_ref"


def _profile(stages: int, seed: int, freqs: int = 12) -> StageProfile:
    rng = np.random.default_rng(seed)
    f = np.linspace(900, 1740, freqs).astype(np.int64)
    work = rng.uniform(0.5, 2.0, size=(stages, 2, 1)) * np.array([1.0, 2.0])[None, :, None]
    mem = rng.uniform(0.1, 0.6, size=(stages, 2, 1))
    t = work * (mem + (1 - mem) * 1740 / f[None, None, :])
    p = 80 + 220 * (f / 1740) ** 2.4 * rng.uniform(0.95, 1.05, size=(stages, 2, freqs))
    return StageProfile(f, t, t * p, f"synthetic seed {seed}")


CASES = [("1f1b", 4, 8, None), ("gpipe", 3, 6, None), ("interleaved-1f1b", 4, 8, 2),
         ("zbv", 4, 8, None)]


def _hull_energy(prob: PipelineProblem, d: np.ndarray) -> float:
    """The relaxation's objective at durations d: hull cost + P*S*makespan."""
    rel = relaxation(prob)
    cost = 0.0
    for key, o in prob.options.items():
        h = rel.hull[key]
        idx = prob.ops_of[key]
        cost += float(np.interp(d[idx], o.time_s[h], o.cost_j[h]).sum())
    return cost + prob.blocking_power_w * prob.stages * prob.makespan(d)


@pytest.mark.parametrize("kind,stages,n,v", CASES)
def test_network_simplex_equals_highs_at_every_deadline(kind, stages, n, v):
    pytest.importorskip("highspy")
    g = graph_for(kind, stages, n, v)
    prob = PipelineProblem(_profile(g.stages, seed=stages + n), kind, stages, n, 300.0, v)
    highs = _Relaxation(prob, "highs")
    search = start_search(prob)
    lo, hi = search.t_min_s, search.t_max_s * 1.05
    ts = np.random.default_rng(0).uniform(lo, hi, 25)     # any order: warm from saved bases
    ts = np.concatenate([ts, [lo, hi, ts[3]]])
    for t in ts:
        d, bound = relaxation(prob).solve(t)
        assert bound == pytest.approx(highs.solve(t)[1], rel=1e-9)
        # a feasible primal solution that attains the bound: the bound is the optimum
        assert prob.makespan(d) <= t * (1 + 1e-12)
        assert _hull_energy(prob, d) == pytest.approx(bound, rel=1e-9)
        fast = prob.op_times(prob.fastest_choice())
        slow = relaxation(prob).tslow
        assert np.all(d >= fast - 1e-12) and np.all(d <= slow + 1e-12)


def test_network_simplex_refuses_a_deadline_no_plan_meets():
    prob = PipelineProblem(_profile(4, seed=1), "1f1b", 4, 6, 300.0)
    fastest = prob.makespan(prob.op_times(prob.fastest_choice()))
    with pytest.raises(GearshiftError, match="no plan finishes"):
        relaxation(prob).solve(fastest * 0.99)
    d, _ = relaxation(prob).solve(fastest)                 # and recovers from it
    assert prob.makespan(d) <= fastest * (1 + 1e-12)


@pytest.mark.parametrize("kind,stages,n,v", CASES[:3])
def test_fast_rescore_and_round_down_are_exact(kind, stages, n, v):
    g = graph_for(kind, stages, n, v)
    prob = PipelineProblem(_profile(g.stages, seed=7), kind, stages, n, 300.0, v)
    rng = np.random.default_rng(2)
    sizes = np.array([len(prob.options[k].time_s) for k in prob.op_key])
    for _ in range(10):
        choice = rng.integers(0, sizes)
        a = prob.rescore(prob.to_plan(choice))
        b = prob.rescore_choice(choice)
        assert (a.time_s, a.energy_j, a.compute_energy_j, a.blocking_energy_j) == \
            (b.time_s, b.energy_j, b.compute_energy_j, b.blocking_energy_j)
        d = prob.op_times(rng.integers(0, sizes)) * rng.uniform(0.9, 1.1, prob.num_ops)
        want = np.empty(prob.num_ops, dtype=np.int64)        # the Python loop it replaced
        for key, o in prob.options.items():
            idx = prob.ops_of[key]
            pos = np.searchsorted(o.time_s, d[idx] * (1 + 1e-12), side="right") - 1
            want[idx] = np.maximum(pos, 0)
        np.testing.assert_array_equal(round_down(prob, d), want)


def test_compare_matches_points_and_the_hull():
    ref = [(1.0, 10.0), (2.0, 8.0), (3.0, 7.0)]
    assert compare(ref, ref).ok
    # (2, 8) is missing but the hull of (1, 10) and (3, 6.5) gives 8.25 there: a miss
    c = compare([(1.0, 10.0), (3.0, 6.5)], ref)
    assert len(c.misses) == 1 and c.misses[0][0] == 2.0 and not c.ok
    # (3, 5) pulls the hull at 2 down to 7.5: matched by a mix of two plans
    assert compare([(1.0, 10.0), (3.0, 5.0)], ref).misses == []
    # a new frontier that starts later does not reach the fastest point
    assert not compare([(1.5, 1.0), (3.0, 1.0)], ref).reaches_fastest
    assert lower_hull_at(np.array([1.0, 3.0]), np.array([10.0, 6.0]), np.array([2.0, 4.0]))[0] \
        == 8.0


# The roundings of two different optimal LP vertices differ by up to ~0.1 % at single times, in
# both directions: the reference misses some of the new frontier's points by as much as the new
# frontier misses some of the reference's. So each reference point must be matched within
# ROUNDING_SPREAD, the lower hulls must agree on average within HULL_MEAN, and coverage must
# hold (pipeline_quality: the reference's fastest time, its span, >= half its point count).
ROUNDING_SPREAD = 2.5e-3
HULL_MEAN = 1e-4


@pytest.mark.parametrize("case", ["gpt3-n12", "bloom-n24", "il-4x8"])
def test_frontier_is_as_good_as_the_reference(shared_data, case):
    if case.startswith("il"):
        pytest.importorskip("torch.distributed.pipelining")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import pipeline_frontier_ref as pr

    res = pr.case_frontier(case)
    new = np.array([(p.time_s, p.energy_j) for p in res.frontier.points])
    ref = np.array(read_reference(REF / f"{case}.json"))
    c = compare(new, ref, energy_rtol=ROUNDING_SPREAD)
    assert c.ok, c.summary()
    ts = np.linspace(ref[0, 0], min(ref[-1, 0], new[:, 0].max()), 2000)    # both hulls
    hn = lower_hull_at(new[:, 0], new[:, 1], ts)
    hr = lower_hull_at(ref[:, 0], ref[:, 1], ts)
    assert np.all(np.isfinite(hn))
    assert np.mean(hn / hr - 1) <= HULL_MEAN
    # every point is a real plan, exactly re-scored
    for p in res.frontier.points[:: max(1, len(new) // 8)]:
        r = res.search.problem.rescore(res.search.plan_for(p))
        assert (r.time_s, r.energy_j) == (p.time_s, p.energy_j)


def test_network_simplex_without_blocking_power_and_with_one_clock():
    pytest.importorskip("highspy")
    prof = _profile(4, seed=3)
    one = StageProfile(prof.freqs_mhz[-1:], prof.time_s[:, :, -1:], prof.energy_j[:, :, -1:],
                       "one clock")
    for p, profile in ((0.0, prof), (300.0, one), (0.0, one)):
        prob = PipelineProblem(profile, "1f1b", 4, 6, p)
        highs = _Relaxation(prob, "highs")
        fast = prob.makespan(prob.op_times(prob.fastest_choice()))
        for t in (fast * 1.3, fast, fast * 1.1):
            d, bound = relaxation(prob).solve(t)
            assert bound == pytest.approx(highs.solve(t)[1], rel=1e-9, abs=1e-9)
            assert prob.makespan(d) <= t * (1 + 1e-12)
