"""The iso-time polish (issue 16 item 4, quality) and the hull LP's tighter bound (could fail).

On brute-forced tiny pipelines: the hull LP over feasible clocks is a valid lower bound, at least
as tight as the relaxation's; the dive and the exchange return real plans that end by T; a window
MILP that spans the whole timeline finds the optimum. The polish counts work instead of reading
a clock, so two runs give the same plan. On the shared A40 BLOOM profile (N = 24, 8-stage 1F1B),
the selected iso-time plan, re-scored exactly, lies within 0.1 points (of the all-max energy) of
the relaxation's bound (it was 0.34 before).
"""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.pipeline import PipelinePlan, execute, load_stage_profile
from gearshift.search.pipeline import start_search
from gearshift.search.pipeline_lp import relaxation
from gearshift.search.pipeline_plan import plan_pipeline
from gearshift.search import pipeline_polish
from gearshift.search.pipeline_polish import (HullLP, Work, choice_of, dive, exchange,
                                              feasible_options, polish, tight_bound)
from gearshift.search.pipeline_problem import PipelineProblem

from test_search_pipeline import best_at, brute_force, synthetic_profile

P_BLOCK_W = 8 * 70.38


@pytest.mark.parametrize("seed", range(3))
def test_bound_and_polish_against_brute_force(seed):
    stages, mb, p_block = 2, 2, 40.0
    prof = synthetic_profile(stages, (1000, 1200, 1400, 1600, 1800), seed=seed)
    mk, en, _ = brute_force(prof, "1f1b", stages, mb, p_block)
    prob = PipelineProblem(prof, "1f1b", stages, mb, p_block)
    search = start_search(prob)
    for t in np.linspace(search.t_min_s, search.t_max_s, 5):
        opt = best_at(mk, en, t)
        lp = relaxation(prob).solve(t)[1]
        tight = tight_bound(prob, t)
        assert lp * (1 - 1e-9) <= tight <= opt * (1 + 1e-9)
        # no feasible clock is dropped: the brute-force optimum uses only kept ones
        kept = feasible_options(prob, t)
        assert all(len(k) >= 1 for k in kept)
        choice, first = dive(prob, t, lp=HullLP(prob, t))
        assert first == pytest.approx(tight, rel=1e-9)
        r = prob.rescore(prob.to_plan(choice))
        assert r.time_s <= t * (1 + 1e-12) and r.energy_j >= opt * (1 - 1e-9)
        ex = exchange(prob, choice, t)
        rx = prob.rescore(prob.to_plan(ex))
        assert rx.time_s <= t * (1 + 1e-12) and opt * (1 - 1e-9) <= rx.energy_j
        assert rx.energy_j <= r.energy_j * (1 + 1e-12)
        best = polish(search, t, budget_s=5.0)
        assert best.time_s <= t * (1 + 1e-12) and best.energy_j >= opt * (1 - 1e-9)
        assert search.tight_bounds[t] == pytest.approx(tight, rel=1e-9)
        assert (choice_of(prob, best.plan) >= 0).all()


def test_a40_bloom_iso_time_within_a_tenth_of_a_point(shared_data):
    n = 24
    prof = load_stage_profile(shared_data / "perseus_a40/stage_profile/bloom+a40_bf16.csv",
                              10, 80)
    # 10 nominal CPU s of polish (the default is 60): enough on this workload
    res = plan_pipeline(prof, "1f1b", 8, n, P_BLOCK_W, "iso-time", polish_s=10.0)
    allmax = execute(prof, PipelinePlan.uniform(8, n, 1740), "1f1b", 8, n, P_BLOCK_W)
    iso = execute(prof, res.plan, "1f1b", 8, n, P_BLOCK_W)          # exact re-scoring
    assert iso.time_s <= allmax.time_s * (1 + 1e-12)
    lp = res.search.bounds[allmax.time_s]
    tight = res.search.tight_bounds[allmax.time_s]
    assert lp <= tight * (1 + 1e-12) <= iso.energy_j * (1 + 1e-12)
    gap_pts = 100 * (iso.energy_j - lp) / allmax.energy_j
    assert gap_pts <= 0.1


@pytest.mark.parametrize("kind,stages,v", [("interleaved-1f1b", 2, 2), ("zb-interleaved", 2, 2),
                                           ("zbv", 2, 2), ("dualpipev", 2, 2), ("gpipe", 3, None)])
def test_polish_keeps_the_deadline_on_every_schedule(kind, stages, v):
    """Split backwards (I, W), virtual stages and overlapped F/B included: the polished plan,
    re-scored by the executor, ends by T and is no worse than the sweep's best at T."""
    mb = 4
    prof = synthetic_profile(stages * (v or 1), (1000, 1200, 1400, 1600, 1800), seed=3)
    prob = PipelineProblem(prof, kind, stages, mb, 40.0, v)
    search = start_search(prob)
    t = search.baseline.time_s
    before = search.best_within(t).energy_j
    best = polish(search, t, budget_s=3.0)
    r = prob.rescore(best.plan)
    assert (r.time_s, r.energy_j) == (best.time_s, best.energy_j)
    assert r.time_s <= t * (1 + 1e-12)
    assert r.energy_j <= before
    assert search.bounds.get(t, -np.inf) <= search.tight_bounds[t] * (1 + 1e-12) <= r.energy_j


def test_polish_is_deterministic_and_counts_its_work():
    """Two polishes of the same problem with the same budget give the same plan (the budget is
    spent by counted work, not by a clock), spend about the budget, and a smaller budget stops
    earlier but still returns a plan that ends by T."""
    prof = synthetic_profile(3, (1000, 1150, 1300, 1450, 1600, 1800), seed=5)
    out = []
    for budget in (1.0, 1.0, 0.05):
        prob = PipelineProblem(prof, "1f1b", 3, 6, 40.0)
        search = start_search(prob)
        t = search.baseline.time_s
        best = polish(search, t, budget_s=budget)
        r = prob.rescore(best.plan)
        assert r.time_s <= t * (1 + 1e-12)
        assert (r.time_s, r.energy_j) == (best.time_s, best.energy_j)
        out.append((best.plan.freq_mhz, r.energy_j, search.polish_work_s[t]))
    (f1, e1, w1), (f2, e2, w2), (_, e3, w3) = out
    assert np.array_equal(f1, f2) and e1 == e2 and w1 == w2
    assert 0 < w3 < w1
    assert e1 <= e3


def test_work_budget_runs_out():
    work = Work(1.0)
    assert work.ok() and work.ok(0.5)
    work.lp(iterations=10_000, columns=1000)        # 0.38 s + the call
    assert work.ok() and not work.ok(0.7)
    work.milp({"lp_iterations": 10_000, "columns": 1000})
    assert not work.ok()


@pytest.mark.parametrize("seed", range(2))
def test_one_window_over_everything_is_the_exact_optimum(monkeypatch, seed):
    """The window search from the all-max plan: with one window as wide as the timeline, its
    MILP over every feasible clock is the exact problem, so it lands on the brute-force optimum
    at T (the sweep's best is not used: the window alone must get there)."""
    stages, mb, p_block = 2, 2, 40.0
    prof = synthetic_profile(stages, (1000, 1200, 1400, 1600, 1800), seed=seed)
    mk, en, _ = brute_force(prof, "1f1b", stages, mb, p_block)
    prob = PipelineProblem(prof, "1f1b", stages, mb, p_block)
    search = start_search(prob)
    t = search.baseline.time_s
    allmax = search.candidates[0]
    monkeypatch.setattr(pipeline_polish, "WINDOW_FRAC", 4.0)
    best = pipeline_polish._window_search(search, allmax, t, Work(10.0))
    r = prob.rescore(best.plan)
    assert r.time_s <= t * (1 + 1e-12)
    assert r.energy_j == pytest.approx(best_at(mk, en, t), rel=1e-9)
    assert best_at(mk, en, t) < allmax.energy_j * (1 - 1e-6)   # the window had work to do
