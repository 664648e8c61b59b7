"""Selection on a frontier: iso-time, iso-energy, max-slowdown, deadline, cost; infeasible ->
nearest. Parsing the objective is tested in test_objective.py."""

from __future__ import annotations

import pytest

from gearshift.errors import ConfigError, InfeasibleSelectionError
from gearshift.model.frontier import Frontier, FrontierPoint
from gearshift.objective import Objective
from gearshift.search.select import select, target_time

PTS = [(10.0, 100.0), (10.5, 90.0), (11.0, 85.0), (12.0, 82.0), (14.0, 81.0)]


def frontier(baseline=(10.5, 120.0)) -> Frontier:
    return Frontier([FrontierPoint(t, e) for t, e in PTS],
                    baseline=FrontierPoint(*baseline) if baseline else None)


def test_iso_time_at_all_max_time():
    p = select(frontier(), "iso-time")
    assert (p.time_s, p.energy_j) == (10.5, 90.0)
    # without a baseline: the fastest time
    assert select(frontier(None), "iso-time").time_s == 10.0
    assert select(frontier(), "fastest").energy_j == 100.0


def test_iso_energy():
    # all-max energy 120 J: the fastest point already uses less
    assert select(frontier(), "iso-energy").time_s == 10.0
    p = select(frontier((12.5, 84.0)), "iso-energy")
    assert (p.time_s, p.energy_j) == (12.0, 82.0)
    with pytest.raises(InfeasibleSelectionError) as exc:
        select(frontier((9.0, 50.0)), "iso-energy")
    assert exc.value.nearest.energy_j == 81.0
    with pytest.raises(ConfigError, match="baseline"):
        select(frontier(None), "iso-energy")


def test_max_slowdown():
    assert select(frontier(), "max-slowdown=1.0").time_s == 10.0
    assert select(frontier(), "max-slowdown=1.1").time_s == 11.0
    assert select(frontier(), "max-slowdown=1.5").energy_j == 81.0
    assert target_time(frontier(), "max-slowdown=1.1") == pytest.approx(11.0)


def test_infeasible_names_nearest():
    f = Frontier([FrontierPoint(t, e) for t, e in PTS[2:]], baseline=FrontierPoint(10.5, 120.0))
    with pytest.raises(InfeasibleSelectionError) as exc:
        select(f, "iso-time")
    assert exc.value.nearest.time_s == 11.0
    assert "nearest" in exc.value.problem and "11 s" in exc.value.problem


def test_cost_eta():
    # eta=1: energy only -> the slowest, lowest-energy point; eta=0: time only -> the fastest
    assert select(frontier(), "cost=1").energy_j == 81.0
    assert select(frontier(), "cost=0").time_s == 10.0
    mid = select(frontier(), "cost=0.5")
    assert 10.0 <= mid.time_s <= 14.0


def test_deadline_is_an_absolute_time_limit():
    assert select(frontier(), "deadline=11.5").time_s == 11.0
    assert target_time(frontier(), "deadline=11.5") == 11.5
    with pytest.raises(InfeasibleSelectionError, match="deadline"):
        select(frontier(), "deadline=9")


def test_selection_takes_an_objective():
    assert select(frontier(), Objective("max-slowdown", 1.1)).time_s == 11.0
