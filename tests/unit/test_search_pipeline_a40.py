"""The A40 targets of issue 5 (could fail): Perseus's stage profiles, scaled as SOURCE.md.

For GPT-3 175B and BLOOM, N = 12 and 24, 8-stage 1F1B: the iso-time plan, re-scored exactly,
runs no slower than all-max clocks, uses less energy than EnvPipe's point, saves at least what
Perseus's own frontier shows at the all-max time, and away from the fastest time our frontier
lies within 0.5% of Perseus's frontier or below it.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from gearshift.pipeline import PipelinePlan, execute, load_stage_profile
from gearshift.search.pipeline_plan import plan_pipeline
from gearshift.search.refine import staircase

P_BLOCK_W = 8 * 70.38


@pytest.mark.slow
@pytest.mark.parametrize("model,n", [("gpt3-175b", 12), ("gpt3-175b", 24), ("bloom", 12),
                                     ("bloom", 24)])
def test_a40_targets(shared_data, model, n):
    root = shared_data / "perseus_a40"
    prof = load_stage_profile(root / "stage_profile" / f"{model}+a40_bf16.csv", 10, 80)
    res = plan_pipeline(prof, "1f1b", 8, n, P_BLOCK_W, "iso-time")
    allmax = execute(prof, PipelinePlan.uniform(8, n, 1740), "1f1b", 8, n, P_BLOCK_W)
    iso = execute(prof, res.plan, "1f1b", 8, n, P_BLOCK_W)          # exact re-scoring
    assert (iso.time_s, iso.energy_j) == (res.result.time_s, res.result.energy_j)
    assert iso.time_s <= allmax.time_s * (1 + 1e-12)

    with (root / "envpipe_result_a40.csv").open() as fh:
        env = next(r for r in csv.DictReader(fh)
                   if r["model"] == model and int(r["num_microbatches"]) == n)
    assert iso.energy_j < float(env["energy"])

    d = np.loadtxt(root / "frontier" / f"{model}_bf16_mb{n}.csv", delimiter=",", skiprows=1)
    pt, pe = d[:, 0] * 10, d[:, 1] * 80
    perseus_at_allmax = pe[pt <= allmax.time_s].min()
    saving = 1 - iso.energy_j / allmax.energy_j
    assert saving >= 1 - perseus_at_allmax / allmax.energy_j
    # the relaxation bound really bounds the plan
    assert iso.energy_j >= res.search.bounds[allmax.time_s] * (1 - 1e-9)

    away = pt >= allmax.time_s
    gap = staircase(res.search, pt[away]) / pe[away] - 1
    assert gap.max() <= 0.005
