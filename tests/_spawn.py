"""Run a test's distributed workers on local ranks, and fail clearly when they do not finish.

One place for what the gloo/NCCL tests need (tests/unit/test_overlap_tp.py, test_pipelining_wrap.py,
test_tuning_distributed.py, test_distributed.py, tests/gpu/test_overlap_gpu.py):

- A rendezvous no other run can take: the ranks meet through a FileStore in a fresh temporary
  directory (``init_method="file://..."``), not a TCP port. Binding port 0, closing the socket and
  handing the number to the workers leaves a window in which a concurrent test run (or anything
  else on the machine) takes the port. torchrun gets ``--standalone``: its agent binds the store
  itself on a port the kernel picks and keeps it open, and the workers share that store.
- A deadline: workers still running after ``timeout_s`` are killed (the whole process group for
  torchrun), and the failure shows the tail of every rank's stderr; each rank's stdout and stderr
  go to a log file of its own, so one rank's output is not interleaved with another's.

``spawn_ranks(fn, world, args)`` calls ``fn(rank, init_method, *args)`` in each of ``world``
processes; ``fn`` calls ``torch.distributed.init_process_group(backend, init_method=init_method,
rank=rank, world_size=world)`` itself, so the backend and its options stay with the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAIL_CHARS = 4000


def _entry(rank, fn, log_dir, init_method, args):
    with open(os.path.join(log_dir, f"rank{rank}.log"), "w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    # a forked child inherits pytest's capture objects as sys.stdout/sys.stderr: write to the fds
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    fn(rank, init_method, *args)


def _tails(log_dir: str | Path) -> str:
    parts = []
    for log in sorted(Path(log_dir).glob("rank*.log")):
        text = log.read_text(errors="replace")
        parts.append(f"--- {log.stem} stderr (last {TAIL_CHARS} chars) ---\n{text[-TAIL_CHARS:]}")
    return "\n".join(parts)


def spawn_ranks(fn, world: int, args: tuple = (), *, timeout_s: float = 600.0,
                start_method: str = "spawn") -> None:
    """Run ``fn(rank, init_method, *args)`` on ``world`` processes; raise AssertionError with
    every rank's stderr if one fails or they are not all done within ``timeout_s``."""
    import torch.multiprocessing as mp  # noqa: PLC0415 (tests without torch never get here)
    from torch.multiprocessing.spawn import ProcessException  # noqa: PLC0415

    tmp = tempfile.mkdtemp(prefix="gearshift-ranks-")
    init_method = f"file://{os.path.join(tmp, 'store')}"
    try:
        ctx = mp.start_processes(_entry, args=(fn, tmp, init_method, args), nprocs=world,
                                 join=False, start_method=start_method)
        deadline = time.monotonic() + timeout_s
        try:
            while not ctx.join(timeout=max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    for p in ctx.processes:
                        if p.is_alive():
                            p.kill()
                    for p in ctx.processes:
                        p.join(10)
                    raise AssertionError(
                        f"{world} ranks of {fn.__name__} not done after {timeout_s:.0f} s; "
                        f"killed them\n{_tails(tmp)}")
        except ProcessException as exc:
            raise AssertionError(f"{fn.__name__}: {exc}\n{_tails(tmp)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def torchrun(script: str | Path, nproc: int, args: list[str], *,
             timeout_s: float = 600.0) -> subprocess.CompletedProcess:
    """Run ``script`` under ``torchrun --standalone`` on ``nproc`` local ranks; raise
    AssertionError with the stderr tail if it fails or is not done within ``timeout_s``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(nproc), str(script), *map(str, args)]
    # a session of its own: on a timeout the agent and all its workers are killed together
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"torchrun {Path(script).name} not done after {timeout_s:.0f} s; "
                             f"killed it\n{err[-TAIL_CHARS:]}") from None
    if proc.returncode != 0:
        raise AssertionError(f"torchrun {Path(script).name} exited with {proc.returncode}\n"
                             f"{err[-TAIL_CHARS:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
