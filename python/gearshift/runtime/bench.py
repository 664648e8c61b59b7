"""Runtime micro-benchmarks: hook cost per launch, boundary-to-clock-call latency, backend cost.

On a machine without a GPU every figure runs against the fakes (fake CUPTI callbacks, a fake
device thread that performs the stream writes) and says so: they measure the runtime's own code
paths on this CPU, not a GPU's. The loops are C++ so Python's overhead is in none of them.
"""

from __future__ import annotations

import os

from .._native import native


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _median(xs: list[float]) -> float:
    return _pct(xs, 0.5)


def environment() -> str:
    load = os.getloadavg()[0]
    return f"CPU fakes, {os.cpu_count()} cores, load average {load:.1f}"


def hook_cost(launches: int = 200_000, partition_len: int = 64, repeats: int = 5) -> dict:
    """Added ns per launch (best of ``repeats``) over an empty CUPTI subscriber, per mode."""
    return dict(native().bench_hook_cost(launches, partition_len, repeats))


def boundary_latency(trigger: str = "write", backend: str = "dry-run", partitions: int = 400,
                     kernels_per: int = 4, kernel_us: float = 250.0, spin_us: float = 200.0,
                     sleep_poll_us: float = 10.0) -> dict:
    """Device reached a boundary -> the backend call began, in us (median, p99, n)."""
    from .backends import make_backend  # noqa: PLC0415

    b = make_backend(backend, supported_mhz=[1980, 1500, 1005])
    r = native().bench_boundary_latency(b, trigger, partitions, kernels_per,
                                        int(kernel_us * 1e3), int(spin_us * 1e3),
                                        int(sleep_poll_us * 1e3))
    sig = [x / 1e3 for x in r["signal_to_call_ns"]]
    det = [x / 1e3 for x in r["detect_to_call_ns"]]
    poll = "spin" if sleep_poll_us == 0 else f"hybrid(spin {spin_us:g} us, then every {sleep_poll_us:g} us)"
    return {"trigger": trigger, "backend": backend, "n": len(sig), "poll": poll,
            "superseded": int(r["superseded"]),
            "median_us": _median(sig), "p99_us": _pct(sig, 0.99), "max_us": max(sig or [0.0]),
            "detect_to_call_median_us": _median(det)}


def backend_cost(backend: str, n: int = 20_000) -> dict:
    """One lock_sm_mhz call through a backend, us (median, p99). nvml needs a GPU and root."""
    from .backends import make_backend  # noqa: PLC0415

    b = make_backend(backend, supported_mhz=[1980, 1500, 1005])
    clocks = b.supported_sm_mhz(0) or [1980, 1500]
    ns = native().bench_backend_calls(b, [clocks[0], clocks[len(clocks) // 2]], n)
    us = [x / 1e3 for x in ns]
    return {"backend": backend, "n": n, "median_us": _median(us), "p99_us": _pct(us, 0.99)}


def run_all(quick: bool = False):
    """Yield (name, figures) for every switch benchmark, in the order they are printed."""
    scale = 4 if quick else 1
    yield "hook_cost", hook_cost(launches=200_000 // scale, repeats=3 if quick else 5)
    for backend in ("dry-run", "sim"):
        yield f"backend_cost/{backend}", backend_cost(backend, n=20_000 // scale)
    n = 400 // scale  # partitions of 1 ms (4 kernels x 250 us) on the fake device
    yield "latency/host_func", boundary_latency("host_func", partitions=n)
    yield "latency/write-spin", boundary_latency("write", partitions=n, sleep_poll_us=0)
    yield "latency/write", boundary_latency("write", partitions=n)
