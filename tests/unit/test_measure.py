"""gearshift.measure as people use it: wall time first, 'not measured' instead of 0, a
decorator that keeps the result, nesting and re-entry, CSV/JSONL logs, a whole command."""

import csv
import json
import subprocess
import sys
import time

import pytest

import gearshift
from gearshift.monitor import Monitor, measure, set_current_device
from gearshift.monitor.gpu import NoGpuCounters


def _no_gpu():
    return Monitor(devices=NoGpuCounters("no GPU here (test)"), rapl=False)


def test_plain_code_reports_wall_time_and_not_measured_energy():
    with measure("sleep", _no_gpu()) as m:
        time.sleep(0.05)
    assert m.wall_time_s >= 0.05 and m.time_s == m.wall_time_s
    assert m.figures == [] and m.unavailable["gpu"] == "no GPU here (test)"
    text = str(m)
    assert text.splitlines()[0].startswith("window 'sleep': wall time")
    assert "gpu  not measured: no GPU here" in text and " 0.0000 J" not in text


def test_simulated_gpu_that_ran_nothing_is_not_measured_not_zero():
    from gearshift.devices.sim import SimDevice

    set_current_device(SimDevice("h100-sxm"))
    try:
        with gearshift.measure("plain python") as m:
            time.sleep(0.01)
    finally:
        set_current_device(None)
    assert m.wall_time_s >= 0.01 and m.time_source == "measured"
    assert "ran no iteration" in m.unavailable["gpu"]
    assert not [f for f in m.figures if f.scope == "gpu"]


def test_decorator_keeps_result_nests_and_reenters(tmp_path):
    log = tmp_path / "e.csv"
    timed = measure("fib", _no_gpu(), log=str(log))

    @timed
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(4) == 3                       # the function's result comes back
    # every (recursive, re-entered) call is its own window; inner ones close first
    assert len(fib.measurements) == 9
    outer = fib.measurements[-1]
    assert all(m.wall_time_s <= outer.wall_time_s for m in fib.measurements)
    with timed as a:                         # the same object entered again
        with timed as b:
            pass
    assert a.result.wall_time_s >= b.result.wall_time_s
    rows = list(csv.DictReader(log.open()))
    assert len({(r["started_at"], r["wall_time_s"]) for r in rows}) == 11
    assert {r["source"] for r in rows if r["scope"] == "gpu"} == {"not measured"}
    assert all(r["energy_j"] == "" for r in rows if r["source"] == "not measured")


def test_jsonl_log_and_bad_log_name(tmp_path):
    log = tmp_path / "e.jsonl"
    with measure("a", _no_gpu(), log=str(log)):
        pass
    with measure("b", _no_gpu(), log=str(log)):
        pass
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["name"] for x in lines] == ["a", "b"] and lines[0]["wall_time_s"] >= 0
    from gearshift.errors import ConfigError

    with pytest.raises(ConfigError, match="csv nor .jsonl"):
        measure("x", log="e.txt")


def test_measure_a_whole_command(tmp_path):
    log = tmp_path / "cmd.jsonl"
    r = subprocess.run([sys.executable, "-m", "gearshift", "measure", "--log", str(log), "--",
                        sys.executable, "-c", "import time, sys; time.sleep(0.2); sys.exit(3)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3                 # the command's own exit code
    first = r.stderr.strip().splitlines()[0]
    assert "wall time" in first and "(measured)" in first
    rec = json.loads(log.read_text())
    assert rec["wall_time_s"] >= 0.2
    if not rec["figures"]:                   # no NVML/RAPL here: said, not zero
        assert "gpu" in rec["unavailable"]
