"""Boundary-to-clock-call latency: stream-ordered write + polling controller vs a
cudaLaunchHostFunc-style trigger, measured in the same run.

Targets on a GPU (issue #6): median <= 5 us, p99 <= 50 us. Without a GPU the device is the fake
(a thread that performs the writes at kernel boundaries, 1 ms partitions), so the figures are the
controller's own latency on this CPU, including its scheduling under the machine's load.
Usage: python bench/switch_latency.py [--partitions 400] [--backend dry-run]
"""

from __future__ import annotations

import argparse

from gearshift.runtime import bench as rb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=400)
    ap.add_argument("--backend", default="dry-run", choices=["dry-run", "sim"])
    a = ap.parse_args()
    print(f"# {rb.environment()}")
    runs = [("host_func", {}), ("write", {"sleep_poll_us": 0}), ("write", {})]
    for trigger, kw in runs:
        r = rb.boundary_latency(trigger, a.backend, a.partitions, **kw)
        print(f"trigger={trigger} poll={r['poll']} median_us={r['median_us']:.2f} "
              f"p99_us={r['p99_us']:.2f} max_us={r['max_us']:.1f} n={r['n']} "
              f"superseded={r['superseded']}")
    if rb.gpu_available():
        g = rb.real_gpu_step()
        for trig in ("host_func", "write"):
            print(f"real_gpu trigger={trig} median_us={g[trig + '_median_us']:.2f} "
                  f"p99_us={g[trig + '_p99_us']:.2f} n={g[trig + '_n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
