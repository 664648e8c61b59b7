"""Composition of partition frontiers against brute force over every combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.search.compose import compose
from gearshift.search.partition_frontier import pareto_indices


def random_frontiers(rng, parts, max_points, integer=False):
    out = []
    for _ in range(parts):
        k = int(rng.integers(1, max_points + 1))
        if integer:
            t = np.sort(rng.choice(np.arange(1, 40), size=k, replace=False)).astype(float)
        else:
            t = np.sort(rng.uniform(1.0, 3.0, size=k))
        e = np.sort(rng.uniform(1.0, 5.0, size=k))[::-1].copy()
        out.append((t, e))
    return out


def brute_force(frontiers):
    combos = list(itertools.product(*[range(len(t)) for t, _ in frontiers]))
    t = np.array([sum(frontiers[i][0][k] for i, k in enumerate(c)) for c in combos])
    e = np.array([sum(frontiers[i][1][k] for i, k in enumerate(c)) for c in combos])
    keep = pareto_indices(t, e)
    return t[keep], e[keep]


def check_achievable(frontiers, res):
    for p in range(len(res)):
        c = res.choices(p)
        assert res.time_s[p] == pytest.approx(sum(frontiers[i][0][k] for i, k in enumerate(c)))
        assert res.energy_j[p] == pytest.approx(sum(frontiers[i][1][k] for i, k in enumerate(c)))
    assert np.all(np.diff(res.time_s) > 0) and np.all(np.diff(res.energy_j) < 0)


def max_time_excess(exact_t, exact_e, res):
    """Largest time the result needs beyond an exact point to match its energy."""
    worst = 0.0
    for t, e in zip(exact_t, exact_e):
        ok = res.energy_j <= e * (1 + 1e-12)
        assert ok.any(), "an exact point's energy is reached by no returned point"
        worst = max(worst, float(res.time_s[ok].min() - t))
    return worst


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_within_stated_bound(seed):
    rng = np.random.default_rng(seed)
    frontiers = random_frontiers(rng, int(rng.integers(2, 6)), 6)
    exact_t, exact_e = brute_force(frontiers)
    for q in (None, 0.3, 0.05, 0.001):
        res = compose(frontiers, q)
        check_achievable(frontiers, res)
        m = sum(len(t) > 1 for t, _ in frontiers)
        assert res.dp_bound_s <= m * res.time_quantum_s + 1e-12
        assert res.error_bound_s == min(res.dp_bound_s, res.hull_bound_s)
        assert max_time_excess(exact_t, exact_e, res) <= res.error_bound_s + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_each_search_alone_keeps_its_bound(seed):
    rng = np.random.default_rng(100 + seed)
    frontiers = random_frontiers(rng, 4, 7)
    exact_t, exact_e = brute_force(frontiers)
    dp_only = compose(frontiers, 0.2, hull=False)
    assert max_time_excess(exact_t, exact_e, dp_only) <= dp_only.dp_bound_s + 1e-9
    # a quantum as wide as everything leaves the hull walk alone to do the work
    hull_heavy = compose(frontiers, 100.0)
    assert max_time_excess(exact_t, exact_e, hull_heavy) <= hull_heavy.hull_bound_s + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_exact_when_times_are_whole_quanta(seed):
    rng = np.random.default_rng(200 + seed)
    frontiers = random_frontiers(rng, int(rng.integers(2, 5)), 6, integer=True)
    exact_t, exact_e = brute_force(frontiers)
    res = compose(frontiers, 1.0)
    assert res.dp_bound_s == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(res.time_s, exact_t)
    np.testing.assert_allclose(res.energy_j, exact_e)


def test_fine_quantum_recovers_the_exact_frontier():
    rng = np.random.default_rng(7)
    frontiers = random_frontiers(rng, 4, 5)
    exact_t, exact_e = brute_force(frontiers)
    res = compose(frontiers, 1e-5)
    # every exact point is found to within the bound, and nothing beats the exact frontier
    assert max_time_excess(exact_t, exact_e, res) <= res.error_bound_s + 1e-9
    for t, e in zip(res.time_s, res.energy_j):
        faster = exact_t <= t + 1e-12
        assert e >= exact_e[faster].min() - 1e-9


def test_max_time_keeps_points_up_to_it():
    rng = np.random.default_rng(11)
    frontiers = random_frontiers(rng, 5, 6)
    exact_t, exact_e = brute_force(frontiers)
    limit = float(np.quantile(exact_t, 0.3))
    res = compose(frontiers, 0.01, max_time_s=limit)
    inside = exact_t <= limit
    assert max_time_excess(exact_t[inside], exact_e[inside], res) <= res.error_bound_s + 1e-9


def test_dominated_inputs_keep_their_own_indices():
    # input 0 carries dominated points in a shuffled order: choices must index the input as given
    t0 = np.array([2.0, 1.0, 1.5, 3.0])
    e0 = np.array([5.0, 4.0, 6.0, 3.0])       # (1.5, 6) and (2, 5) are dominated by (1, 4)
    frontiers = [(t0, e0), (np.array([1.0, 2.0]), np.array([2.0, 1.0]))]
    res = compose(frontiers, 0.5)
    check_achievable(frontiers, res)
    used = set(res.choice_by_unit[0].tolist())
    assert used <= {1, 3}


def test_partition_with_one_option_is_a_constant():
    frontiers = [(np.array([1.0]), np.array([3.0])), (np.array([1.0, 2.0]), np.array([2.0, 1.0]))]
    res = compose(frontiers)
    np.testing.assert_allclose(res.time_s, [2.0, 3.0])
    np.testing.assert_allclose(res.energy_j, [5.0, 4.0])


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="nothing to compose"):
        compose([])
    with pytest.raises(ConfigError, match="empty"):
        compose([(np.array([]), np.array([]))])
    with pytest.raises(ConfigError, match="non-finite"):
        compose([(np.array([1.0, np.nan]), np.array([1.0, 2.0]))])
    with pytest.raises(ConfigError, match="must be > 0"):
        compose([(np.array([1.0, 2.0]), np.array([2.0, 1.0]))], 0.0)
    with pytest.raises(ConfigError, match="too fine"):
        compose([(np.array([1.0, 2.0]), np.array([2.0, 1.0]))] * 4, 1e-9)
