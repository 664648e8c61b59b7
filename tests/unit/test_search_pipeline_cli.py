"""`gearshift plan`: the CLI contract end to end, and clean errors for bad input."""

from __future__ import annotations

import csv
import re
import subprocess
import sys

import numpy as np
import pytest

from gearshift.pipeline import PipelinePlan, execute, load_stage_profile

FREQS = (900, 1200, 1500, 1800)


def profile_text(stages=3, drop=None, negative=False, reverse=False):
    rows = ["stage,instruction,frequency,time,energy"]
    for s in range(stages):
        for name, w in (("forward", 1.0 + 0.3 * s), ("backward", 2.0 + 0.5 * s)):
            for f in FREQS:
                if drop == (s, name, f):
                    continue
                t = w * (0.3 + 0.7 * 1800 / f)
                if reverse:
                    t = w * (0.3 + 0.7 * f / 1800)
                e = (60 + 240 * (f / 1800) ** 2) * t
                if negative and s == 1 and f == 1200:
                    e = -e
                rows.append(f"{s},{name},{f},{t!r},{e!r}")
    return "\n".join(rows) + "\n"


def gearshift(*args):
    return subprocess.run([sys.executable, "-m", "gearshift", "plan", *args],
                          capture_output=True, text=True)


def base_args(tmp_path, text=None, **over):
    p = tmp_path / "profile.csv"
    p.write_text(text if text is not None else profile_text())
    args = {"--stage-profile": str(p), "--pipeline": "1f1b", "--stages": "3",
            "--microbatches": "4", "--blocking-power-w": "40",
            "--frontier-out": str(tmp_path / "frontier.csv"),
            "--plan-out": str(tmp_path / "plan.csv")}
    args.update(over)
    return [x for kv in args.items() for x in kv]


@pytest.mark.parametrize("select", [None, "max-slowdown=1.05", "iso-energy", "cost=0.5"])
def test_contract(tmp_path, select):
    args = base_args(tmp_path) + (["--select", select] if select else [])
    r = gearshift(*args)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "frontier.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["time_s", "energy_j"]
    t = np.array([float(x["time_s"]) for x in rows])
    e = np.array([float(x["energy_j"]) for x in rows])
    assert np.all(np.diff(t) > 0) and np.all(np.diff(e) < 0)     # a Pareto frontier
    with open(tmp_path / "plan.csv") as fh:
        plan_rows = list(csv.DictReader(fh))
    assert list(plan_rows[0]) == ["stage", "instruction", "microbatch", "freq_mhz"]
    assert len(plan_rows) == 3 * 2 * 4
    # the last line is the selected plan, re-scored exactly; it is a frontier point
    prof = load_stage_profile(tmp_path / "profile.csv")
    plan = PipelinePlan.load(tmp_path / "plan.csv", 3, 4)
    res = execute(prof, plan, "1f1b", 3, 4, 40.0)
    assert r.stdout.strip().splitlines()[-1] == res.line()
    assert any(abs(a - res.time_s) < 1e-12 and abs(b - res.energy_j) < 1e-9
               for a, b in zip(t, e))
    allmax = execute(prof, PipelinePlan.uniform(3, 4, 1800), "1f1b", 3, 4, 40.0)
    if select is None:
        assert res.time_s <= allmax.time_s * (1 + 1e-12)
        assert res.energy_j < allmax.energy_j
    if select == "max-slowdown=1.05":
        assert res.time_s <= 1.05 * t.min() * (1 + 1e-12)
    if select == "iso-energy":
        assert res.energy_j <= allmax.energy_j


def test_scales_and_gpipe(tmp_path):
    r = gearshift(*base_args(tmp_path, **{"--pipeline": "GPipe", "--time-scale": "10",
                                          "--energy-scale": "80"}), "--quiet")
    assert r.returncode == 0, r.stderr
    prof = load_stage_profile(tmp_path / "profile.csv", 10, 80)
    res = execute(prof, PipelinePlan.load(tmp_path / "plan.csv", 3, 4), "gpipe", 3, 4, 40.0)
    assert r.stdout.strip() == res.line()


@pytest.mark.parametrize("text,over,extra,match", [
    (profile_text(drop=(1, "backward", 1200)), {}, [], r"lacks 1 clock"),
    (profile_text(negative=True), {}, [], r"negative"),
    (profile_text(reverse=True), {}, [], r"not monotone"),
    (None, {"--pipeline": "zigzag"}, [], r"unknown pipeline kind"),
    (None, {}, ["--select", "max-slowdown=0.5"], r"below 1"),
    (None, {}, ["--select", "fastest-ever"], r"unknown objective"),
    (None, {"--stages": "4"}, [], r"stage profile has 3 stages"),
    (None, {"--blocking-power-w": "-3"}, [], r"blocking power"),
])
def test_bad_input(tmp_path, text, over, extra, match):
    r = gearshift(*base_args(tmp_path, text, **over), *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert re.search(match, r.stderr), r.stderr


def test_infeasible_selection_prints_nearest(tmp_path, monkeypatch):
    from gearshift.errors import InfeasibleSelectionError
    from gearshift.model.frontier import Frontier, FrontierPoint
    from gearshift.search.select import select

    f = Frontier([FrontierPoint(2.0, 5.0)], baseline=FrontierPoint(1.5, 9.0))
    with pytest.raises(InfeasibleSelectionError, match=r"nearest: time 2 s, energy 5 J"):
        select(f, "iso-time")


@pytest.mark.parametrize("kind,stages,v", [("zbv", "2", None)])
def test_torch_schedules_plan_and_sim_agree(tmp_path, kind, stages, v):
    """`plan --pipeline <torch schedule>` then `sim pipeline` of its plan: the same last line;
    the profile has 4 model stages = 2 ranks x 2 virtual stages."""
    pytest.importorskip("torch.distributed.pipelining")
    extra = {"--pipeline": kind, "--stages": stages, "--microbatches": "4"}
    if v:
        extra["--virtual-stages"] = v
    args = base_args(tmp_path, profile_text(stages=4), **extra)
    r = gearshift(*args)
    assert r.returncode == 0, r.stderr
    plan_rows = (tmp_path / "plan.csv").read_text()
    assert ("backward_input" in plan_rows) == (kind == "zbv")
    sim = subprocess.run([sys.executable, "-m", "gearshift", "sim", "pipeline",
                          "--stage-profile", str(tmp_path / "profile.csv"),
                          "--plan", str(tmp_path / "plan.csv"), "--pipeline", kind,
                          "--stages", stages, "--microbatches", "4",
                          "--blocking-power-w", "40"] + (["--virtual-stages", v] if v else []),
                         capture_output=True, text=True)
    assert sim.returncode == 0, sim.stderr
    assert sim.stdout.strip().splitlines()[-1] == r.stdout.strip().splitlines()[-1]


def test_polish_flag(tmp_path):
    """--polish-s sets the polish's budget: 0 turns it off, a budget never makes the selected
    plan worse, the last line keeps its contract; a negative budget is refused."""
    lines = {}
    for budget in ("0", "2"):
        r = gearshift(*base_args(tmp_path, **{"--plan-out": str(tmp_path / f"p{budget}.csv")}),
                      "--polish-s", budget)
        assert r.returncode == 0, r.stderr
        last = r.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"time_s=\S+ energy_j=\S+", last)
        lines[budget] = {k: float(v) for k, v in (x.split("=") for x in last.split())}
    assert lines["2"]["energy_j"] <= lines["0"]["energy_j"] * (1 + 1e-12)
    r = gearshift(*base_args(tmp_path), "--polish-s", "-1")
    assert r.returncode != 0 and "polish-s" in r.stderr
