"""Real-GPU checks of the runtime (skip without an NVIDIA GPU). Clocks are never changed here:
every test uses the dry-run backend, so they are safe on a shared GPU.

  * the CUPTI hook sees every kernel of a real PyTorch training step (count vs torch.profiler,
    measured in separate processes because both subscribe to CUPTI);
  * stream-ordered writes reach the host (every posted boundary is seen by the controller);
  * boundary-to-clock-call latency with dry-run, and the hook's cost per launch.
"""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gpu

STEP = textwrap.dedent("""
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(),
                                torch.nn.Linear(1024, 512)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, 512, device="cuda")
    def step():
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        opt.step()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
""")


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEP + textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cupti_hook_counts_every_kernel_of_a_training_step():
    prof = _run("""
        import json
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            step(); torch.cuda.synchronize()
        names = [e.name for e in p.events() if e.device_type.name == "CUDA"
                 and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()]
        print(json.dumps({"n": len(names)}))
    """)
    hook = _run("""
        import json
        from gearshift.runtime import Session, make_backend
        with Session(None, backend=make_backend("dry-run"), mode="record", signal_path="cuda",
                     watchdog=False) as s:
            assert s.cupti_active, s.cupti_error
            s.step(); step(); torch.cuda.synchronize()
            recs = s.records(iteration=1)
            st = s.stats()
        print(json.dumps({"n": len(recs), "nested_skipped": st["nested_skipped"],
                          "late": st["late_counted"]}))
    """)
    assert hook["n"] == prof["n"], (hook, prof)


def test_stream_writes_reach_the_host_and_latency_with_dry_run():
    r = _run("""
        import json
        from gearshift.runtime import Session, make_backend
        from gearshift.model import KernelTrace
        from gearshift.model.schedule import Schedule, ScheduleEntry
        with Session(None, backend=make_backend("dry-run"), mode="record", signal_path="cuda",
                     watchdog=False) as s:
            s.step(); step(); torch.cuda.synchronize()
            n = len(s.records(iteration=1))
        starts = list(range(0, n, max(1, n // 8)))
        clocks = [1410, 1200]
        sched = Schedule([ScheduleEntry(i, st, clocks[i % 2]) for i, st in enumerate(starts)],
                         "x", "gpu", n)
        with Session(sched, backend=make_backend("dry-run", supported_mhz=clocks), signal_path="cuda",
                     watchdog=False, auto_wrap=False) as s:
            for _ in range(5):
                s.step(); step()
            torch.cuda.synchronize()
            import time; time.sleep(0.05)
            st = s.stats(); ev = s.switch_events()
        lat = sorted((e.call_ns or e.detect_ns) - e.detect_ns for e in ev if e.action == "switched")
        print(json.dumps({"posted": st["posted"], "seen": st["seen"], "dropped": st["dropped_posts"],
                          "mismatch": s.mismatch_reason, "n_switched": len(lat)}))
    """)
    assert r["dropped"] == 0 and r["mismatch"] is None
    assert r["posted"] > 0 and r["seen"] == r["posted"], r


def test_real_step_benchmark_prints_figures():
    out = subprocess.run([sys.executable, "-m", "gearshift", "bench", "switch", "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "real_gpu_step" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("median_us=")
