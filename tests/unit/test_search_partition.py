"""Partition frontiers, the single-GPU iteration search, its refinement passes and its Schedule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gearshift.errors import ConfigError, FormatError, InfeasibleSelectionError
from gearshift.model import Frontier, Schedule
from gearshift.search.iteration import _select_index, plan_iteration
from gearshift.search.partition_frontier import (
    hypervolume,
    pareto_indices,
    partition_frontier,
    profile_frontiers,
)
from gearshift.search.synthetic import STATIC_W, make_profile


@pytest.mark.parametrize("seed", range(8))
def test_pareto_indices_match_pairwise_dominance(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 12, 60).astype(float)     # small integers: many ties
    e = rng.integers(0, 12, 60).astype(float)
    got = pareto_indices(t, e)
    dominated = [any((t[j] <= t[i] and e[j] <= e[i]) and (t[j] < t[i] or e[j] < e[i])
                     for j in range(t.size)) for i in range(t.size)]
    assert {(t[i], e[i]) for i in got} == {(t[i], e[i]) for i in range(t.size) if not dominated[i]}
    assert len(got) == len({(t[i], e[i]) for i in got})          # one index per duplicate
    assert np.all(np.diff(t[got]) > 0) and np.all(np.diff(e[got]) < 0)


def test_hypervolume_against_a_grid_count():
    t = np.array([1.0, 2.0, 3.5, 2.5])
    e = np.array([4.0, 2.0, 1.0, 3.0])
    ref = (5.0, 5.0)
    assert hypervolume(t, e, ref) == pytest.approx(1 * 1 + 1.5 * 3 + 1.5 * 4)
    xs, ys = np.meshgrid(np.linspace(0, 5, 1001)[:-1] + 0.0025, np.linspace(0, 5, 1001)[:-1] + 0.0025)
    covered = np.zeros_like(xs, dtype=bool)
    for a, b in zip(t, e):
        covered |= (xs >= a) & (ys >= b)
    assert hypervolume(t, e, ref) == pytest.approx(covered.mean() * 25, rel=1e-2)
    assert hypervolume(t, e, (0.5, 0.5)) == 0.0


def test_partition_frontier_is_the_nondominated_options():
    profile, _ = make_profile(4, seed=1)
    for i, opts in enumerate(profile.by_partition()):
        fr = partition_frontier(opts)
        assert fr.partition == i and fr.num_options == len(opts)
        assert np.all(np.diff(fr.time_s) > 0) and np.all(np.diff(fr.energy_j) < 0)
        on = set(fr.options)
        for o in opts:
            beaten = np.any((fr.time_s <= o.time_s) & (fr.energy_j <= o.energy_j))
            assert beaten, "every option is on the frontier or dominated by it"
            if (o.freq_mhz, o.overlap) in on:
                assert not any(p.time_s <= o.time_s and p.energy_j <= o.energy_j and
                               (p.time_s, p.energy_j) != (o.time_s, o.energy_j) for p in opts)


def test_static_energy_is_charged_once():
    total, _ = make_profile(3, seed=2, energy_includes_static=True)
    dynamic, _ = make_profile(3, seed=2, energy_includes_static=False)
    a = profile_frontiers(total, energy_includes_static=True)
    b = profile_frontiers(dynamic, energy_includes_static=False)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.time_s, y.time_s)
        np.testing.assert_allclose(x.energy_j, y.energy_j)
    # stating it wrongly shifts every energy by exactly static power x time
    c = profile_frontiers(total, energy_includes_static=False)
    for (f, ov), t, e in zip(c[0].options, c[0].time_s, c[0].energy_j):
        assert e == pytest.approx(total.lookup(0, f, ov).energy_j + STATIC_W * t)


def recompute(profile, schedule):
    t = e = 0.0
    for entry in schedule.entries:
        opt = profile.lookup(entry.partition, entry.freq_mhz, entry.overlap)
        t, e = t + opt.time_s, e + opt.energy_j
    return t, e


def test_plan_iteration_outputs_a_valid_schedule_and_frontier(tmp_path):
    profile, partitioning = make_profile(8, seed=3)
    frontier, schedule = plan_iteration(profile, partitioning, "model-sig", "H100 test")
    assert isinstance(frontier, Frontier) and isinstance(schedule, Schedule)
    assert schedule.model_signature == "model-sig" and schedule.device == "H100 test"
    assert [e.start_kernel for e in schedule.entries] == partitioning.boundaries()
    assert [e.signature for e in schedule.entries] == [p.signature for p in partitioning.partitions]
    t, e = recompute(profile, schedule)
    assert schedule.predicted["time_s"] == pytest.approx(t)
    assert schedule.predicted["energy_j"] == pytest.approx(e)
    # the selected point is on the frontier, with one choice per partition naming the schedule's
    sel = frontier.points[frontier.meta["selected_index"]]
    assert sel.energy_j == pytest.approx(e)
    assert [c.unit for c in sel.choices] == [f"p{i}" for i in range(8)]
    assert [(c.freq_mhz, c.overlap) for c in sel.choices] == \
        [(x.freq_mhz, x.overlap) for x in schedule.entries]
    # iso-time: no slower than all-max-clocks, and strictly cheaper here (overlap frees time)
    assert t <= schedule.predicted["baseline_time_s"] * (1 + 1e-12)
    assert e < schedule.predicted["baseline_energy_j"]
    frontier.save(tmp_path / "f.json")
    schedule.save(tmp_path / "s.json")
    assert len(Frontier.load(tmp_path / "f.json")) == len(frontier)
    assert Schedule.load(tmp_path / "s.json").freqs_mhz() == schedule.freqs_mhz()


def brute_iteration(profile):
    """Exact least energy at every time, over every combination of options (tiny profiles)."""
    opts = profile.by_partition()
    t, e = [], []
    for combo in itertools.product(*opts):
        t.append(sum(o.time_s for o in combo))
        e.append(sum(o.energy_j for o in combo))
    t, e = np.array(t), np.array(e)
    keep = pareto_indices(t, e)
    return t[keep], e[keep]


@pytest.mark.parametrize("objective", ["iso-time", "fastest", "iso-energy", "max-slowdown=1.1",
                                       "cost=0.5"])
def test_selection_matches_brute_force_on_a_tiny_profile(objective):
    freqs = tuple(range(1380, 1981, 120))      # 6 clocks, 3 partitions: 6 * 7 * 6 options
    profile, partitioning = make_profile(3, seed=4, freqs=freqs)
    frontier, schedule = plan_iteration(profile, partitioning, objective=objective,
                                        time_quantum_s=1e-7)
    bt, be = brute_iteration(profile)
    base_t = schedule.predicted["baseline_time_s"]
    base_e = schedule.predicted["baseline_energy_j"]
    want = _select_index(bt, be, objective, base_t, base_e)
    bound = frontier.meta["error_bound_s"]
    got_t, got_e = schedule.predicted["time_s"], schedule.predicted["energy_j"]
    if objective == "cost=0.5":
        p_ref = base_e / base_t
        cost = lambda t, e: 0.5 * e + 0.5 * p_ref * t  # noqa: E731
        assert cost(got_t, got_e) <= cost(bt[want], be[want]) + p_ref * bound
    elif objective == "iso-energy":
        assert got_e <= base_e and got_t <= bt[want] + bound
    else:
        assert got_e == pytest.approx(be[want], rel=1e-9)


def test_refinement_passes_report_their_gain():
    profile, partitioning = make_profile(24, seed=5)
    coarse = plan_iteration(profile, partitioning, objective="max-slowdown=1.05",
                            time_quantum_s=2e-4, refine=False)[1]
    frontier, schedule = plan_iteration(profile, partitioning, objective="max-slowdown=1.05",
                                        time_quantum_s=2e-4, tolerance=1e-5)
    passes = frontier.meta["passes"]
    assert len(passes) >= 2
    assert passes[0]["partitions_searched"] == 24
    assert all(p["partitions_searched"] <= 24 for p in passes[1:])
    assert all(b["time_quantum_s"] < a["time_quantum_s"] for a, b in zip(passes, passes[1:]))
    assert any(p["gain_rel"] > 1e-5 for p in passes[1:]), "a coarse first pass leaves gains"
    assert schedule.predicted["energy_j"] <= coarse.predicted["energy_j"] * (1 + 1e-12)
    assert schedule.predicted["time_s"] <= 1.05 * schedule.predicted["baseline_time_s"]
    assert schedule.predicted["pass_gains_rel"] == [p["gain_rel"] for p in passes[1:]]


def test_dynamic_only_profiles_give_the_same_plan():
    total, part_a = make_profile(6, seed=6, energy_includes_static=True)
    dynamic, part_b = make_profile(6, seed=6, energy_includes_static=False)
    fa, sa = plan_iteration(total, part_a)
    fb, sb = plan_iteration(dynamic, part_b)          # read from energy_scope "gpu-dynamic"
    assert sa.freqs_mhz() == sb.freqs_mhz()
    assert sb.predicted["energy_j"] == pytest.approx(sa.predicted["energy_j"])
    assert fb.energy_scope == "gpu"
    fc, sc = plan_iteration(dynamic, part_b, energy_includes_static=True)
    assert sc.predicted["energy_j"] < sb.predicted["energy_j"]


def test_bad_input_gets_clear_errors():
    profile, partitioning = make_profile(3, seed=7)
    other, other_part = make_profile(4, seed=7)
    with pytest.raises(FormatError, match="partitions"):
        plan_iteration(profile, other_part)
    for bad in ("quickest", "max-slowdown=0.9", "cost=2", "max-slowdown", "iso-time=3"):
        with pytest.raises(ConfigError):
            plan_iteration(profile, partitioning, objective=bad)
    with pytest.raises(InfeasibleSelectionError) as info:
        _select_index(np.array([2.0, 3.0]), np.array([5.0, 4.0]), "iso-time", 1.0, 9.0)
    assert (info.value.nearest.time_s, info.value.nearest.energy_j) == (2.0, 5.0)


@pytest.mark.parametrize("objective", ["iso-time", "fastest", "iso-energy", "max-slowdown=1.03",
                                       "cost=0.2", "cost=0.8"])
def test_select_shortcut_agrees_with_select_on_every_point(objective):
    from gearshift.model import FrontierPoint
    from gearshift.search.compose import compose
    from gearshift.search.select import select

    profile, _ = make_profile(12, seed=8)
    comp = compose(profile_frontiers(profile, energy_includes_static=True))
    t, e = comp.time_s, comp.energy_j
    base_t, base_e = float(t[len(t) // 5]) * 1.001, float(e[len(t) // 3])
    full = Frontier([FrontierPoint(float(a), float(b)) for a, b in zip(t, e)],
                    baseline=FrontierPoint(base_t, base_e))
    want = select(full, objective)
    got = _select_index(t, e, objective, base_t, base_e)
    assert (t[got], e[got]) == (want.time_s, want.energy_j)
