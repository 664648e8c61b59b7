"""One Objective type: parsed once, the same acceptance everywhere, one Zeus cost."""

from __future__ import annotations

import math

import pytest

from gearshift.cli import main
from gearshift.errors import ConfigError
from gearshift.objective import Objective, check_eta, zeus_cost


@pytest.mark.parametrize("text,kind,value", [
    ("iso-time", "iso-time", None), ("ISO-TIME", "iso-time", None), ("Fastest", "fastest", None),
    (" iso-energy ", "iso-energy", None), ("max-slowdown=1.05", "max-slowdown", 1.05),
    ("Max-Slowdown = 1.5", "max-slowdown", 1.5), ("deadline=0.25", "deadline", 0.25),
    ("cost=0", "cost", 0.0), ("COST=1", "cost", 1.0)])
def test_accepted_forms(text, kind, value):
    o = Objective.parse(text)
    assert (o.kind, o.value) == (kind, value)
    assert Objective.parse(str(o)) == o          # the canonical form round-trips


@pytest.mark.parametrize("text,match", [
    ("iso-speed", "unknown objective"), ("max-slowdown", "needs a value"),
    ("max-slowdown=0.9", "below 1"), ("max-slowdown=inf", "max-slowdown=inf: it is not a finite"),
    ("max-slowdown=nan", "not a finite"), ("cost=2", r"\[0, 1\]"), ("cost=nan", r"\[0, 1\]"),
    ("iso-time=3", "takes no value"), ("fastest=", "takes no value"),
    ("max-slowdown=abc", "not a number"), ("deadline=0", "not a positive"),
    ("deadline=-1", "not a positive"), ("deadline=inf", "not a finite"), ("", "unknown")])
def test_refused_forms_are_one_line_errors(text, match):
    with pytest.raises(ConfigError, match=match) as exc:
        Objective.parse(text)
    assert "\n" not in exc.value.problem and exc.value.fix


def test_objective_values_are_checked_when_built_directly():
    with pytest.raises(ConfigError):
        Objective("max-slowdown", math.inf)
    with pytest.raises(ConfigError):
        Objective("cost", True)
    with pytest.raises(ConfigError):
        Objective("iso-time", 1.0)
    with pytest.raises(ConfigError):
        Objective.parse(1.05)


@pytest.mark.parametrize("text", ["fastest", "ISO-TIME", "max-slowdown=inf", "deadline=0",
                                  "cost=1.5", "iso-energy"])
def test_config_and_plan_select_agree(text, tmp_path, capsys):
    """GearshiftConfig and `gearshift plan --select` accept and refuse the same objectives."""
    from gearshift.integrations import GearshiftConfig

    try:
        GearshiftConfig(objective=text)
        config_ok = True
    except ConfigError:
        config_ok = False
    missing = str(tmp_path / "missing.json")
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--profile", missing, "--select", text])
    err = capsys.readouterr().err
    # a bad objective is refused before any file is read; a good one gets as far as the file
    cli_ok = "objective" not in err
    assert exc.value.code != 0 and config_ok == cli_ok, err


def test_one_zeus_cost_and_eta_check():
    assert zeus_cost(100.0, 2.0, 1.0, 300.0) == 100.0
    assert zeus_cost(100.0, 2.0, 0.0, 300.0) == 600.0
    assert zeus_cost(100.0, 2.0, 0.5, 300.0) == 350.0
    assert check_eta(0.25) == 0.25
    for bad in (-0.1, 1.5, math.nan, True, "x", None):
        with pytest.raises(ConfigError, match=r"\[0, 1\]"):
            check_eta(bad)


def test_tuners_refuse_a_bad_eta_the_same_way():
    from gearshift.tuning.online import OnlineConfig
    from gearshift.tuning.power_limit import PowerLimitOptimizer

    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        OnlineConfig(candidates_mhz=[1980, 1500], eta=2.0)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        PowerLimitOptimizer([300, 250], eta=math.nan)
