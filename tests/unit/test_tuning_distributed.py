import json

import pytest
from _spawn import spawn_ranks

from gearshift.errors import TraceError
from gearshift.tuning.distributed import check_same_trace, plan_synchronized, profile_rank


def setup(rank, layers=2):
    from gearshift.devices.sim import SimDevice, get_preset
    from gearshift.devices.sim.workloads import gpt_stack_trace
    from gearshift.tuning.replay.drift import phase_kind_partitioning

    trace = gpt_stack_trace(layers=layers, seq=1024, micro_batch=1, tp=2)
    preset = get_preset("a100-sxm")
    if rank == 1:   # a slower straggler: less memory bandwidth and compute
        preset = preset.with_(mem_bw_bytes_s=preset.mem_bw_bytes_s * 0.6,
                              peak_flops=preset.peak_flops * 0.7, name=preset.name + " slow")
    return trace, phase_kind_partitioning(trace), SimDevice(preset)


FREQS = [1410, 1260, 1110, 960, 810, 660]


def test_joint_plan_slows_fast_ranks_into_the_stragglers_slack():
    profiles = []
    for r in range(2):
        trace, parts, dev = setup(r)
        profiles.append(profile_rank(trace, parts, dev, FREQS))
    plan = plan_synchronized(profiles, eta=0.5)
    fast, slow = plan.freqs_mhz
    assert len(fast) == len(slow) == profiles[0].num_partitions
    assert sum(fast) < sum(slow)                 # slack on the fast rank goes to lower clocks
    # predicted time: each partition as long as its slowest rank
    assert plan.time_s >= sum(profiles[1].lookup(p, f).time_s for p, f in enumerate(slow)) - 1e-12
    # independent per-rank plans cost at least as much under the joint model
    indep = plan_synchronized(profiles[:1], 0.5).freqs_mhz[0]
    assert indep != fast


def test_mismatched_rank_named():
    check_same_trace([("a", 4), ("a", 4), ("a", 4)])
    with pytest.raises(TraceError, match=r"rank\(s\) \[2\]") as err:
        check_same_trace([("a", 4), ("a", 4), ("b", 5)])
    assert "rank 2: b (5 partitions)" in err.value.problem


def _worker(rank, init_method, world, out_dir):
    import torch.distributed as dist

    from gearshift.tuning.distributed import distributed_plan, enforce

    dist.init_process_group("gloo", init_method=init_method, rank=rank,
                            world_size=world)
    result = {}
    try:
        trace, parts, dev = setup(rank)
        sched = distributed_plan(trace, parts, dev, FREQS, eta=0.5)
        res = enforce(sched, trace, parts, dev, iterations=2)
        result.update(freqs=sched.freqs_mhz(), time_s=res.time_s,
                      rank_in_schedule=sched.extra["rank"])
        # then the last rank traces another model: every rank must refuse, none may hang
        trace, parts, dev = setup(rank, layers=3 if rank == world - 1 else 2)
        try:
            distributed_plan(trace, parts, dev, FREQS, eta=0.5)
        except TraceError as exc:
            result["error"] = exc.problem
    finally:
        (out_dir / f"{rank}.json").write_text(json.dumps(result))
        dist.destroy_process_group()


def test_gloo_ranks_plan_on_rank0_enforce_their_own_and_refuse_odd_traces(tmp_path):
    world = 3
    # fork: the children reuse the imported torch instead of paying its import three times
    spawn_ranks(_worker, world, (world, tmp_path), start_method="fork")
    out = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(world)]
    assert [o["rank_in_schedule"] for o in out] == [0, 1, 2]
    assert out[0]["freqs"] == out[2]["freqs"]          # same device and shard: same schedule
    assert out[0]["freqs"] != out[1]["freqs"]          # the straggler gets its own
    assert all("rank(s) [2] traced a different iteration" in o["error"] for o in out)
