"""tests/_spawn.py itself: a hung rank is killed at the deadline, and a failing rank's stderr
reaches the test's failure message."""

from __future__ import annotations

import os
import sys
import time

import pytest
from _spawn import spawn_ranks

pytest.importorskip("torch")


def _ok(rank, init_method, out_dir):
    assert init_method.startswith("file://")
    with open(os.path.join(out_dir, f"{rank}.txt"), "w") as f:
        f.write(init_method)


def _hangs_on_rank1(rank, init_method):
    print(f"rank {rank} about to wait", file=sys.stderr, flush=True)
    if rank == 1:
        time.sleep(600)


def _fails_on_rank0(rank, init_method):
    print(f"rank {rank} says why it fails", file=sys.stderr, flush=True)
    if rank == 0:
        raise ValueError("rank 0 broke")


def test_every_rank_runs_with_one_fresh_rendezvous(tmp_path):
    spawn_ranks(_ok, 2, (str(tmp_path),), start_method="fork")
    a, b = ((tmp_path / f"{r}.txt").read_text() for r in (0, 1))
    assert a == b
    spawn_ranks(_ok, 2, (str(tmp_path),), start_method="fork")
    assert (tmp_path / "0.txt").read_text() != a  # another run, another store


def test_a_hung_rank_is_killed_and_its_stderr_reported():
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="not done after 3 s") as err:
        spawn_ranks(_hangs_on_rank1, 2, timeout_s=3, start_method="fork")
    assert time.monotonic() - t0 < 60
    assert "rank 1 about to wait" in str(err.value)


def test_a_failing_rank_reports_its_exception_and_stderr():
    with pytest.raises(AssertionError, match="rank 0 broke") as err:
        spawn_ranks(_fails_on_rank0, 2, timeout_s=120, start_method="fork")
    assert "rank 0 says why it fails" in str(err.value)
