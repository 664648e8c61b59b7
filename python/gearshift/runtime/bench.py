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
    return native().bench_hook_cost(launches, partition_len, repeats).to_dict()


def boundary_latency(trigger: str = "write", backend: str = "dry-run", partitions: int = 400,
                     kernels_per: int = 4, kernel_us: float = 250.0, spin_us: float = 200.0,
                     sleep_poll_us: float = 10.0) -> dict:
    """Device reached a boundary -> the backend call began, in us (median, p99, n)."""
    from .backends import make_backend  # noqa: PLC0415

    b = make_backend(backend, supported_mhz=[1980, 1500, 1005])
    r = native().bench_boundary_latency(b, trigger, partitions, kernels_per,
                                        int(kernel_us * 1e3), int(spin_us * 1e3),
                                        int(sleep_poll_us * 1e3))
    sig = [x / 1e3 for x in r.signal_to_call_ns]
    det = [x / 1e3 for x in r.detect_to_call_ns]
    poll = "spin" if sleep_poll_us == 0 else f"hybrid(spin {spin_us:g} us, then every {sleep_poll_us:g} us)"
    return {"trigger": trigger, "backend": backend, "n": len(sig), "poll": poll,
            "superseded": r.superseded,
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
    scale = 8 if quick else 1
    yield "hook_cost", hook_cost(launches=200_000 // scale, repeats=3 if quick else 5)
    for backend in ("dry-run", "sim"):
        yield f"backend_cost/{backend}", backend_cost(backend, n=20_000 // scale)
    n = 400 // scale  # partitions of 1 ms (4 kernels x 250 us) on the fake device
    yield "latency/host_func", boundary_latency("host_func", partitions=n)
    yield "latency/write-spin", boundary_latency("write", partitions=n, sleep_poll_us=0)
    yield "latency/write", boundary_latency("write", partitions=n)


def gpu_available() -> bool:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def real_gpu_step(iterations: int = 20, samples: int = 200) -> dict:
    """On a real GPU with the dry-run backend (clocks never change):

    * hook cost: a small PyTorch training step timed with no session vs an apply session, per
      launch;
    * boundary-to-clock-call latency, per trigger: a boundary is enqueued on an idle stream and
      timed from the enqueue to the backend call, an upper bound on device-reached -> call (the
      device's own arrival time is not observable from the host).
    """
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from ..model.schedule import Schedule, ScheduleEntry  # noqa: PLC0415
    from .backends import make_backend  # noqa: PLC0415
    from .session import Session  # noqa: PLC0415

    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.GELU(),
                                torch.nn.Linear(1024, 1024)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(32, 1024, device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()

    def timed(fn) -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / iterations

    with Session(None, backend=make_backend("dry-run"), mode="record", signal_path="cuda", watchdog=False) as s:
        s.step()
        step()
        torch.cuda.synchronize()
        n = len(s.records(iteration=1))
    clocks = [1410, 1200]
    starts = list(range(0, n, max(1, n // 4)))
    sched = Schedule([ScheduleEntry(i, st, clocks[i % 2]) for i, st in enumerate(starts)],
                     "bench", "gpu", n)
    t_off = min(timed(step) for _ in range(3))
    with Session(sched, backend=make_backend("dry-run", supported_mhz=clocks), signal_path="cuda",
                 watchdog=False) as s:
        t_apply = min(timed(step) for _ in range(3))
    out = {"launches_per_step": n, "step_off_us": t_off * 1e6, "step_apply_us": t_apply * 1e6,
           "apply_added_ns_per_launch": (t_apply - t_off) / max(n, 1) * 1e9}
    for trigger in ("host_func", "write"):
        sched2 = Schedule([ScheduleEntry(0, 0, clocks[0]), ScheduleEntry(1, 1, clocks[1])],
                          "bench", "gpu", 2)
        with Session(sched2, backend=make_backend("dry-run", supported_mhz=clocks), signal_path="cuda",
                     trigger=trigger, use_cupti=False, watchdog=False) as s:
            for i in range(samples):
                torch.cuda.synchronize()
                s.mark(i % 2)
            torch.cuda.synchronize()
            time.sleep(0.05)
            ev = [e for e in s._rt.switch_events() if e.action == "switched"]
        lat = [(e.call_ns - e.enqueue_ns) / 1e3 for e in ev]
        out[f"{trigger}_n"] = len(lat)
        out[f"{trigger}_median_us"] = _median(lat)
        out[f"{trigger}_p99_us"] = _pct(lat, 0.99)
    return out
