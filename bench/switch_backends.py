"""Controller cost per switch, per clock backend (the lock_sm_mhz call itself).

nvml is included only where a GPU is present and the process may lock clocks (never run it on a
shared GPU). Usage: python bench/switch_backends.py [--n 20000]
"""

from __future__ import annotations

import argparse

from gearshift.runtime import bench as rb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--nvml", action="store_true", help="also time NVML (changes the clocks!)")
    a = ap.parse_args()
    print(f"# {rb.environment()}")
    for backend in ["dry-run", "sim"] + (["nvml"] if a.nvml else []):
        r = rb.backend_cost(backend, a.n)
        print(f"backend={backend} median_us={r['median_us']:.3f} p99_us={r['p99_us']:.3f} n={r['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
