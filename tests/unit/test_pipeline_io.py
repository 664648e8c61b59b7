"""Stage profile and plan files: round trips and the errors bad files get."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gearshift.errors import FormatError
from gearshift.pipeline import PipelinePlan, load_stage_profile

HEADER = "stage,instruction,frequency,time,energy\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def good_profile_text():
    rows = []
    for s in range(2):
        for name, t in (("forward", 1.0), ("backward", 2.0)):
            for f, x in ((1000, 1.0), (2000, 0.6)):
                rows.append(f"{s},{name},{f},{t * x * (1 + s / 2)},{t * x * 100}")
    return HEADER + "\n".join(rows) + "\n"


def test_load_profile_arrays(tmp_path):
    p = load_stage_profile(write(tmp_path, "p.csv", good_profile_text()))
    assert p.stages == 2 and p.freqs_mhz.tolist() == [1000, 2000]
    f, t, e = p.curves(1, "backward")
    assert t.tolist() == [3.0, 2.0 * 0.6 * 1.5] and e.tolist() == [200.0, 120.0]
    s = p.scaled(time=10, energy=80)
    assert s.time_s[0, 0, 0] == 10.0 and s.energy_j[0, 0, 0] == 8000.0
    p.save(tmp_path / "q.csv")
    q = load_stage_profile(tmp_path / "q.csv")
    assert np.array_equal(q.time_s, p.time_s) and np.array_equal(q.energy_j, p.energy_j)


def test_load_real_profile(shared_data):
    p = load_stage_profile(shared_data / "perseus_a40/stage_profile/gpt3-175b+a40_bf16.csv")
    assert p.stages == 8 and len(p.freqs_mhz) == 60
    assert (p.min_freq_mhz, p.max_freq_mhz) == (855, 1740)
    # lower clocks are slower for every (stage, instruction)
    assert np.all(p.time_s[..., 0] > p.time_s[..., -1])


@pytest.mark.parametrize("text,match", [
    ("stage,instruction,frequency,time\n0,forward,1000,1\n", "missing column"),
    (HEADER + "0,sideways,1000,1,1\n", "row 2 column 'instruction'"),
    (HEADER + "0,forward,1000,-1,1\n", "row 2 column 'time'"),
    (HEADER + "0,forward,1000,1,nan\n", "row 2 column 'energy'.*not finite"),
    (HEADER + "0,forward,1000,1,x\n", "'x' is not a number"),
    (HEADER + "0,forward,1000,1,1\n0,forward,1000,1,1\n", "appears twice"),
    (HEADER + "0,forward,1000,1,1\n", "stage 0 has no backward rows"),
    (HEADER + "0,forward,1000,1,1\n0,forward,900,1,1\n0,backward,1000,1,1\n",
     "stage 0 backward lacks 1 clock"),
    ("", "empty"),
])
def test_profile_errors(tmp_path, text, match):
    with pytest.raises(FormatError, match=match):
        load_stage_profile(write(tmp_path, "bad.csv", text))


def test_plan_round_trip_and_errors(tmp_path):
    plan = PipelinePlan(np.arange(1, 13, dtype=np.int64).reshape(2, 2, 3) * 100)
    plan.save(tmp_path / "plan.csv")
    back = PipelinePlan.load(tmp_path / "plan.csv", 2, 3)
    assert np.array_equal(back.freq_mhz, plan.freq_mhz)
    lines = (tmp_path / "plan.csv").read_text().splitlines()
    assert lines[0] == "stage,instruction,microbatch,freq_mhz"
    write(tmp_path, "short.csv", "\n".join(lines[:-1]) + "\n")
    with pytest.raises(FormatError, match="1 computation.*no clock.*s1/backward/2"):
        PipelinePlan.load(tmp_path / "short.csv", 2, 3)
    with pytest.raises(FormatError, match="outside the pipeline"):
        PipelinePlan.load(tmp_path / "plan.csv", 2, 2)
    write(tmp_path, "x.csv", "stage,instruction,microbatch\n0,forward,0\n")
    with pytest.raises(FormatError, match="missing column.*freq_mhz"):
        PipelinePlan.load(tmp_path / "x.csv")
    write(tmp_path, "y.csv", "stage,instruction,microbatch,freq_mhz\n0,forward,0,12.5\n")
    with pytest.raises(FormatError, match="row 2 column 'freq_mhz'"):
        PipelinePlan.load(tmp_path / "y.csv")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gearshift", "sim", "pipeline", *args],
                          capture_output=True, text=True)


def test_cli_contract(tmp_path):
    prof = write(tmp_path, "p.csv", good_profile_text())
    PipelinePlan.uniform(2, 2, 1000).save(tmp_path / "plan.csv")
    r = run_cli("--stage-profile", str(prof), "--plan", str(tmp_path / "plan.csv"),
                "--pipeline", "1f1b", "--stages", "2", "--microbatches", "2",
                "--blocking-power-w", "5")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    # busy s0 = 6, s1 = 9; the hand-computed makespan is 12 (test_pipeline_executor)
    assert last == f"time_s={12.0!r} energy_j={(1200.0 + 5.0 * 9)!r}"


@pytest.mark.parametrize("extra,match", [
    (["--microbatches", "0"], "at least one microbatch"),
    (["--pipeline", "zigzag"], "unknown pipeline kind"),
    (["--microbatches", "3"], "2 x 3|no clock"),
])
def test_cli_errors(tmp_path, extra, match):
    prof = write(tmp_path, "p.csv", good_profile_text())
    PipelinePlan.uniform(2, 2, 1000).save(tmp_path / "plan.csv")
    args = {"--stage-profile": str(prof), "--plan": str(tmp_path / "plan.csv"),
            "--pipeline": "1f1b", "--stages": "2", "--microbatches": "2",
            "--blocking-power-w": "5"}
    for k, v in zip(extra[::2], extra[1::2]):
        args[k] = v
    r = run_cli(*[x for kv in args.items() for x in kv])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    import re
    assert re.search(match, r.stderr), r.stderr
