"""`gearshift sim run`: a trace on the simulated GPU from the command line."""

from __future__ import annotations

import re
import subprocess
import sys

from gearshift.devices.sim.workloads import gpt_stack_trace
from gearshift.model import Partitioning

LAST = re.compile(r"time_s=(\S+) energy_j=(\S+)")


def run(*args):
    return subprocess.run([sys.executable, "-m", "gearshift", "sim", "run", *args],
                          capture_output=True, text=True)


def test_sim_run(tmp_path):
    tr = gpt_stack_trace(layers=2, hidden=2048, heads=16, seq=1024, tp=8)
    tr.save(tmp_path / "t.json")
    cuts = sorted({0} | {i for i, k in enumerate(tr.kernels) if k.kind == "comm"})
    Partitioning.from_cuts(tr, cuts).save(tmp_path / "p.json")
    base = ["--trace", str(tmp_path / "t.json"), "--partitioning", str(tmp_path / "p.json"),
            "--preset", "a40"]
    fast = run(*base, "--kernels-csv", str(tmp_path / "k.csv"))
    slow = run(*base, "--freq", "900")
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    tf, ef = map(float, LAST.fullmatch(fast.stdout.strip().splitlines()[-1]).groups())
    ts, es = map(float, LAST.fullmatch(slow.stdout.strip().splitlines()[-1]).groups())
    assert ts > tf and es < ef          # a low clock: slower, and less energy on this stack
    assert "simulated" in fast.stdout
    rows = (tmp_path / "k.csv").read_text().splitlines()
    assert rows[0] == "kernel,name,partition,start_s,end_s" and len(rows) == len(tr) + 1
    bad = run(*base, "--freq", "1000")
    assert bad.returncode == 2 and "not a supported SM clock" in bad.stderr
    assert "Traceback" not in bad.stderr
