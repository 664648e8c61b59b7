"""Joint planning across ranks (gloo, CPU, simulated GPUs): a straggler's slack goes to the
fast ranks. Compares, under the lockstep model, the joint plan with per-rank plans made alone
and with default clocks; then runs the real collective path on ``--world`` processes.

    .venv/bin/python bench/tuning_distributed.py [--world 4] [--eta 0.5]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

FREQS = [1410, 1335, 1260, 1185, 1110, 1035, 960, 885, 810, 735, 660]


def setup(rank, straggler):
    from gearshift.devices.sim import SimDevice, get_preset
    from gearshift.devices.sim.workloads import gpt_stack_trace
    from gearshift.tuning.replay.drift import phase_kind_partitioning

    trace = gpt_stack_trace(layers=4, seq=2048, micro_batch=1, tp=4)
    preset = get_preset("a100-sxm")
    if rank == straggler:
        preset = preset.with_(mem_bw_bytes_s=preset.mem_bw_bytes_s * 0.6,
                              peak_flops=preset.peak_flops * 0.7, name=preset.name + " slow")
    return trace, phase_kind_partitioning(trace), SimDevice(preset)


def worker(rank, world, port, out, eta):
    import torch.distributed as dist

    from gearshift.tuning.distributed import distributed_plan, enforce

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    trace, parts, dev = setup(rank, 1)
    t0 = time.perf_counter()
    sched = distributed_plan(trace, parts, dev, FREQS, eta=eta)
    plan_s = time.perf_counter() - t0
    res = enforce(sched, trace, parts, dev)
    Path(out, f"{rank}.json").write_text(json.dumps(
        {"plan_s": plan_s, "mean_mhz": sum(sched.freqs_mhz()) / len(sched.entries),
         "local_time_s": res.time_s, "local_energy_j": res.energy_j}))
    dist.destroy_process_group()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=4)
    ap.add_argument("--eta", type=float, default=0.5)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from gearshift.tuning.distributed import (evaluate_synchronized, plan_synchronized,
                                              profile_rank)

    profiles = [profile_rank(*setup(r, 1), FREQS) for r in range(a.world)]
    joint = plan_synchronized(profiles, a.eta)
    alone = [plan_synchronized([p], a.eta).freqs_mhz[0] for p in profiles]
    default = [[FREQS[0]] * profiles[0].num_partitions for _ in profiles]
    p_ref = sum(p.device.tdp_w for p in profiles)
    print(f"{a.world} simulated A100s, rank 1 a straggler (60% HBM, 70% FLOPs); lockstep "
          f"model, GPU energy, simulated; eta={a.eta}")
    print(f"{'plan':>18} {'iter time ms':>13} {'energy J':>9} {'cost':>9}")
    rows = {"joint (rank 0)": (joint.time_s, joint.energy_j),
            "each rank alone": evaluate_synchronized(profiles, alone),
            "default clocks": evaluate_synchronized(profiles, default)}
    for name, (t, e) in rows.items():
        print(f"{name:>18} {t * 1e3:13.2f} {e:9.2f} {a.eta * e + (1 - a.eta) * p_ref * t:9.2f}")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        mp.start_processes(worker, args=(a.world, port, out, a.eta), nprocs=a.world,
                           start_method="fork")
        for r in range(a.world):
            d = json.loads(Path(out, f"{r}.json").read_text())
            print(f"rank {r}: planned in {d['plan_s'] * 1e3:.0f} ms (gather, plan, broadcast); "
                  f"mean clock {d['mean_mhz']:.0f} MHz; its own iteration "
                  f"{d['local_time_s'] * 1e3:.2f} ms, {d['local_energy_j']:.2f} J")
