"""Pipeline frontier search: exactness against brute force, bounds, critical stages raced."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gearshift.pipeline import StageProfile, execute
from gearshift.pipeline.executor import graph_for
from gearshift.search.pipeline import pipeline_frontier, plan_at, start_search
from gearshift.search.pipeline_lp import fill_slack, round_diffuse, round_down
from gearshift.search.pipeline_problem import PipelineProblem, lower_hull, pareto_indices
from gearshift.search.refine import refine


def synthetic_profile(stages: int, freqs=(1000, 1400, 1800), heavy: dict | None = None,
                      seed: int = 0) -> StageProfile:
    """Time ~ a + b/f (partly compute-bound), power rising ~f^2; random per (stage, instr)."""
    rng = np.random.default_rng(seed)
    heavy = heavy or {}
    recs = []
    for s in range(stages):
        for name, base in (("forward", 1.0), ("backward", 2.0)):
            w = base * heavy.get(s, 1.0) * rng.uniform(0.8, 1.2)
            mem = rng.uniform(0.1, 0.5)
            for f in freqs:
                t = w * (mem + (1 - mem) * 1800.0 / f)
                p = 60 + 240 * (f / 1800.0) ** 2
                recs.append((s, name, f, t, p * t))
    return StageProfile.from_records(recs)


def brute_force(profile, kind, stages, mb, p_block):
    """Every plan's exact (time, energy): options per computation are all clocks."""
    g = graph_for(kind, stages, mb)
    nf = len(profile.freqs_mhz)
    n = stages * 2 * mb
    combos = np.array(list(itertools.product(range(nf), repeat=n)))      # (B, n) flat (S,2,N)
    t = profile.time_s.reshape(stages * 2, nf)
    e = profile.energy_j.reshape(stages * 2, nf)
    row = np.repeat(np.arange(stages * 2), mb)
    times = t[row[None, :], combos]
    energies = e[row[None, :], combos].sum(axis=1)
    mk = g.makespans(times.reshape(-1, stages, 2, mb))
    energies = energies + p_block * (stages * mk - times.sum(axis=1))
    return mk, energies, combos


def best_at(mk, en, t):
    ok = mk <= t * (1 + 1e-12)
    return en[ok].min() if ok.any() else np.inf


@pytest.mark.parametrize("kind,mb", [("1f1b", 2), ("gpipe", 2), ("1f1b", 3)])
def test_exact_against_brute_force(kind, mb):
    stages, p_block = 2, 40.0
    freqs = (1000, 1400, 1800) if mb == 2 else (1000, 1800)
    prof = synthetic_profile(stages, freqs, seed=mb)
    mk, en, _ = brute_force(prof, kind, stages, mb, p_block)
    prob = PipelineProblem(prof, kind, stages, mb, p_block)
    search = pipeline_frontier(prob, points=12, between=2)
    assert search.bounds
    for t, lb in search.bounds.items():
        opt = best_at(mk, en, t)
        # the relaxation is a true lower bound, and small problems are solved exactly
        assert lb <= opt * (1 + 1e-9)
        assert search.best_within(t).energy_j == pytest.approx(opt, rel=1e-9)
    # every frontier point is a real plan, re-scored exactly by the executor
    for c in search.pareto():
        r = execute(prof, c.plan, kind, stages, mb, p_block)
        assert (r.time_s, r.energy_j) == (c.time_s, c.energy_j)
    # the brute-force optimum of the fastest and of the all-max time are on the frontier
    for t in (search.t_min_s, search.baseline.time_s):
        assert search.best_within(t).energy_j == pytest.approx(best_at(mk, en, t), rel=1e-9)


def test_heuristic_rounding_gap_on_tiny_instances():
    """Without the exact solve, round+fill stays within a few % of the brute-force optimum
    (the documented gap on tiny instances; the relaxation bound shows it per T)."""
    stages, mb, p_block = 2, 2, 40.0
    worst = 0.0
    for seed in range(4):
        prof = synthetic_profile(stages, seed=seed)
        mk, en, _ = brute_force(prof, "1f1b", stages, mb, p_block)
        prob = PipelineProblem(prof, "1f1b", stages, mb, p_block)
        search = start_search(prob)
        from gearshift.search.pipeline_lp import relaxation

        for t in np.linspace(search.t_min_s, search.t_max_s, 7):
            d, _ = relaxation(prob).solve(t)
            for ch in (round_down(prob, d), round_diffuse(prob, d, t)):
                ch = fill_slack(prob, ch, t)
                r = prob.rescore(prob.to_plan(ch))
                assert r.time_s <= t * (1 + 1e-9)          # rounding never breaks T
                worst = max(worst, r.energy_j / best_at(mk, en, t) - 1)
    assert worst < 0.05


def test_critical_stage_raced_others_slowed():
    # stage 1 is three times heavier: it is the critical path at the all-max time
    stages, mb = 4, 6
    prof = synthetic_profile(stages, freqs=tuple(range(900, 1801, 100)), heavy={1: 3.0})
    prob = PipelineProblem(prof, "1f1b", stages, mb, blocking_power_w=50.0)
    search = pipeline_frontier(prob, points=8)
    base = search.baseline
    best = search.best_within(base.time_s)
    assert best.energy_j < base.energy_j * 0.97
    f = best.plan.freq_mhz
    # the heavy stage's steady-state computations stay at the top clock
    assert np.all(f[1][:, 1:mb - 1] == 1800)
    for s in (0, 2, 3):
        assert f[s].mean() < f[1].mean() - 200


def test_pareto_and_hull_helpers():
    t = np.array([1.0, 1.2, 1.1, 2.0, 1.5])
    c = np.array([10.0, 7.0, 9.5, 6.9, 8.0])    # (1.5, 8) is dominated by (1.2, 7)
    keep = pareto_indices(t, c)
    assert keep.tolist() == [0, 2, 1, 3]
    h = lower_hull(t[keep], c[keep])
    assert h.tolist() == [0, 2, 3]              # (1.1, 9.5) lies above the hull


def test_refine_reports_gains_and_never_worsens():
    prof = synthetic_profile(4, freqs=tuple(range(900, 1801, 60)), seed=3)
    prob = PipelineProblem(prof, "1f1b", 4, 8, 50.0)
    search = pipeline_frontier(prob, points=4, between=0)
    probe = np.linspace(search.t_min_s, search.t_max_s, 50)
    from gearshift.search.refine import staircase

    before = staircase(search, probe)
    reps = refine(search, tol=1e-4, gap_tol=0.0, max_passes=3)
    after = staircase(search, probe)
    assert 1 <= len(reps) <= 3
    assert all(r.gain_rel >= 0 for r in reps)
    assert reps[0].points > 0
    assert np.all(after <= before)
    assert reps[-1].time_quantum_s < (search.t_max_s - search.t_min_s) / 3


def test_gpipe_and_unknown_kind():
    from gearshift.errors import ConfigError

    prof = synthetic_profile(2)
    s = pipeline_frontier(PipelineProblem(prof, "gpipe", 2, 4, 30.0), points=4)
    assert s.best_within(s.baseline.time_s).energy_j <= s.baseline.energy_j
    with pytest.raises(ConfigError, match="unknown pipeline kind"):
        PipelineProblem(prof, "interleaved", 2, 4, 30.0)


def test_bad_profiles_rejected():
    from gearshift.errors import ConfigError, FormatError

    prof = synthetic_profile(2)
    rev = StageProfile(prof.freqs_mhz, prof.time_s[..., ::-1].copy(), prof.energy_j)
    with pytest.raises(FormatError, match="not monotone"):
        PipelineProblem(rev, "1f1b", 2, 2, 10.0)
    with pytest.raises(FormatError, match="stages"):
        PipelineProblem(prof, "1f1b", 3, 2, 10.0)
    with pytest.raises(ConfigError, match="blocking power"):
        PipelineProblem(prof, "1f1b", 2, 2, -1.0)


def test_plan_at_respects_deadline():
    prof = synthetic_profile(3, freqs=tuple(range(900, 1801, 150)), seed=5)
    prob = PipelineProblem(prof, "1f1b", 3, 5, 40.0)
    search = start_search(prob)
    for t in np.linspace(search.t_min_s, search.t_max_s, 5):
        c = plan_at(search, t)
        assert c.time_s <= t * (1 + 1e-9)
        assert c.energy_j >= search.bounds[max(t, search.t_min_s)] * (1 - 1e-9)
