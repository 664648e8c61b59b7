"""`gearshift plan --profile`: one GPU's profile file -> frontier + schedule files."""

import subprocess
import sys

import pytest

from gearshift.devices.sim import SimDevice
from gearshift.model import Frontier, KernelRecord, KernelTrace, Schedule
from gearshift.partition import partition
from gearshift.profile import profile_partitions


def gearshift(*args):
    return subprocess.run([sys.executable, "-m", "gearshift", *args], capture_output=True,
                          text=True)


@pytest.fixture
def files(tmp_path):
    ks = []
    for layer in range(4):
        for phase in ("forward", "backward"):
            ks += [KernelRecord("gemm", phase=phase, module=f"layers.{layer}.mlp", flops=4e12,
                                bytes_read=2e8, bytes_written=1e8),
                   KernelRecord("scan", phase=phase, module=f"layers.{layer}.attn", flops=1e9,
                                bytes_read=8e9, bytes_written=8e9)]
    trace = KernelTrace(ks, model="synthetic", source="synthetic")
    parts = partition(trace, min_partition_s=0)
    prof = profile_partitions(trace, parts, SimDevice("h100-sxm"), step_mhz=60, progress=False)
    trace.save(tmp_path / "trace.json")
    parts.save(tmp_path / "partitioning.json")
    prof.save(tmp_path / "profile.json")
    return tmp_path, trace, prof


def test_plan_single_gpu_writes_a_schedule_bound_to_the_model(files):
    d, trace, prof = files
    r = gearshift("plan", "--profile", str(d / "profile.json"), "--partitioning",
                  str(d / "partitioning.json"), "--trace", str(d / "trace.json"),
                  "--frontier-out", str(d / "frontier.json"), "--schedule-out",
                  str(d / "schedule.json"), "--select", "max-slowdown=1.05")
    assert r.returncode == 0, r.stderr
    sched = Schedule.load(d / "schedule.json")
    sched.check_compatible(trace.signature(), prof.device.name)
    assert sched.objective == "max-slowdown" and len(sched.entries) > 1
    assert sched.predicted["time_s"] <= 1.05 * sched.predicted["baseline_time_s"] * (1 + 1e-9)
    assert sched.predicted["energy_j"] < sched.predicted["baseline_energy_j"]
    assert min(sched.freqs_mhz()) < max(prof.device.supported_freqs_mhz)  # something slowed
    frontier = Frontier.load(d / "frontier.json")
    assert len(frontier) > 1
    t, e = r.stdout.strip().splitlines()[-1].split()
    assert float(t.split("=")[1]) == sched.predicted["time_s"]
    assert float(e.split("=")[1]) == sched.predicted["energy_j"]


def test_plan_needs_exactly_one_kind_of_profile(files):
    d, _, _ = files
    r = gearshift("plan", "--profile", str(d / "profile.json"), "--frontier-out", "x.json")
    assert r.returncode == 2 and "--partitioning" in r.stderr
    r = gearshift("plan", "--frontier-out", "x.json")
    assert r.returncode == 2 and "either --stage-profile" in r.stderr
