"""The A40 calibration: the simulated GPT stack against the measured stage-profile shapes.

Pinned when written: pooled time-ratio MAPE 1.68%, energy-ratio MAPE 1.91% (target <= 3%);
per model <= 2.2%. A model with its power limit or voltage curve removed must fail.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from gearshift.devices.sim import get_preset
from gearshift.devices.sim.calibration import load_targets, shape_errors
from gearshift.devices.sim.fitted import A40_WORKLOAD


@pytest.fixture
def targets(shared_data):
    return load_targets(shared_data / "perseus_a40" / "stage_profile")


def test_shipped_fit_reproduces_the_a40_shapes(targets):
    errs = shape_errors(get_preset("a40"), targets, A40_WORKLOAD)
    assert errs["pooled"]["time_mape"] <= 0.02 and errs["pooled"]["energy_mape"] <= 0.022
    for model in ("gpt3-175b", "bloom"):
        assert errs[model]["time_mape"] <= 0.025, model
        assert errs[model]["energy_mape"] <= 0.025, model


@pytest.mark.parametrize("change", [dict(v_min=1.0), dict(tdp_w=10_000.0),
                                    dict(static_power_w=0.0, leak_power_w=0.0)])
def test_a_broken_model_fails(targets, change):
    errs = shape_errors(get_preset("a40").with_(**change), targets, A40_WORKLOAD)
    assert max(errs["pooled"]["time_mape"], errs["pooled"]["energy_mape"]) > 0.03


def test_validate_command(shared_data):
    r = subprocess.run([sys.executable, "-m", "gearshift", "sim", "validate", "--data",
                        str(shared_data)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASS") == 2
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"replay_time_mape=(\S+) replay_energy_mape=(\S+) "
                     r"shape_time_mape=(\S+) shape_energy_mape=(\S+)", last)
    assert m and float(m.group(1)) < 0.02 and float(m.group(4)) < 0.03
