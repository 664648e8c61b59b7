"""What a clock switch through `gearshift daemon` adds over the same switch in-process.

Target (issue #10): <= 30 us median with the dry-run backend on the development machine.
Usage: python bench/daemon_switch.py [--n 5000] [--repeat 3] [--backend dry-run]
Prints one line per run, then `daemon_added_us=<median over runs>`; exit status 1 when the
target is missed.
"""

from __future__ import annotations

import argparse
import statistics

from gearshift.daemon import bench_daemon_added_us

TARGET_US = 30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="dry-run", choices=["dry-run", "sim"])
    args = ap.parse_args()
    added = []
    for i in range(args.repeat):
        r = bench_daemon_added_us(n=args.n, backend=args.backend)
        added.append(r["daemon_added_us"])
        print(f"run={i} backend={r['backend']} n={r['n']} "
              f"daemon_median_us={r['daemon_median_us']:.2f} daemon_p99_us={r['daemon_p99_us']:.2f} "
              f"inprocess_median_us={r['inprocess_median_us']:.3f} "
              f"inprocess_p99_us={r['inprocess_p99_us']:.3f} "
              f"daemon_added_us={r['daemon_added_us']:.2f}")
    med = statistics.median(added)
    print(f"daemon_added_us={med:.2f} target_us={TARGET_US:.0f} "
          f"{'ok' if med <= TARGET_US else 'MISSED'}")
    return 0 if med <= TARGET_US else 1


if __name__ == "__main__":
    raise SystemExit(main())
