"""Reference frontiers for the pipeline planner's quality checks (issue #16 item 4).

The planner may trade plan identity for speed; what must hold is that its frontier, re-scored
exactly, is as good as the reference's (gearshift.search.pipeline_quality.compare). This writes
the exactly re-scored frontier points of the named cases, as computed by the checked-out code:

    .venv/bin/python bench/pipeline_frontier_ref.py OUT_DIR CASE...

Cases: the bench's (gpt3-n96, il-16x128) and the test's small ones (tests/data/pipeline_ref).
The stored references were written by commit 79550d7 (the planner before the speed work).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline_speed as ps  # noqa: E402

# name -> (model, kind, ranks, microbatches, virtual stages, profile stages)
CASES = {
    "gpt3-n96": ("gpt3-175b", "1f1b", 8, 96, None, 8),
    "il-16x128": ("gpt3-175b", "interleaved-1f1b", 16, 128, 2, 32),
    "gpt3-n12": ("gpt3-175b", "1f1b", 8, 12, None, 8),
    "bloom-n24": ("bloom", "1f1b", 8, 24, None, 8),
    "il-4x8": ("gpt3-175b", "interleaved-1f1b", 4, 8, 2, 8),
}


def case_frontier(name: str):
    """The whole frontier of a case as the bench plans it (no iso-time polish: it is
    wall-clock limited, so not repeatable)."""
    from gearshift.search.pipeline_plan import plan_pipeline

    model, kind, ranks, n, v, pstages = CASES[name]
    prof = ps.load(model)
    if pstages != prof.stages:
        prof = ps.tiled(prof, pstages)
    return plan_pipeline(prof, kind, ranks, n, ps.P_BLOCK_W, "iso-time", virtual_stages=v,
                         polish_s=0)


def main(argv=None) -> int:
    from gearshift.search.pipeline_quality import frontier_points, write_reference

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    for name in argv[1:]:
        c0 = time.process_time()
        res = case_frontier(name)
        cpu = time.process_time() - c0
        pts = frontier_points(res.frontier)
        write_reference(out / f"{name}.json", pts,
                        {"case": name, "spec": CASES[name], "commit": commit, "cpu_s": cpu,
                         "lp_solves": len(res.search.bounds),
                         "profile": "perseus_a40 x10 time, x80 energy, P_block 8 x 70.38 W"})
        print(f"{name}: {len(pts)} points, cpu {cpu:.2f} s, time {pts[0][0]:.4f}.."
              f"{pts[-1][0]:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
