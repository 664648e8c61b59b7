"""Launch-hook cost per kernel launch (off / record / apply / apply with name checks).

Target on a GPU (issue #6): <= 0.5 us added per launch in apply mode. Without a GPU this drives
the CUPTI callback entry directly (the fake CUPTI path) and reports the CPU figure as such.
Usage: python bench/switch_hook.py [--launches 200000] [--partition-len 64]
"""

from __future__ import annotations

import argparse

from gearshift.runtime import bench as rb

TARGET_APPLY_NS = 500.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launches", type=int, default=200_000)
    ap.add_argument("--partition-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"# {rb.environment()}")
    r = rb.hook_cost(a.launches, a.partition_len, a.repeats)
    print(f"hook_cost_ns_per_launch off={r['off_ns']:.1f} record={r['record_ns']:.1f} "
          f"apply={r['apply_ns']:.1f} apply_checked={r['apply_checked_ns']:.1f} "
          f"apply_between_boundaries={r['apply_no_boundary_ns']:.1f} "
          f"(a boundary every {a.partition_len} launches; CUPTI's own dispatch "
          f"{r['baseline_ns']:.1f} ns not included)")
    print(f"apply_target_ns={TARGET_APPLY_NS:.0f} met={r['apply_checked_ns'] <= TARGET_APPLY_NS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
