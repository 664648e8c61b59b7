"""gearshift.pipelining.wrap on 4 gloo ranks: a small model in 4 (or 8) stages trains under
GPipe, 1F1B, Interleaved1F1B and InterleavedZeroBubble on the simulated A40.

Per schedule each rank trains the unwrapped schedule, then the wrapped one from the same
weights: the losses must be equal step by step; the clocks the native runtime set for each
instruction must be the plan's (read back from the plan file rank 0 wrote); the simulated
iteration time and energy must match `gearshift sim pipeline` of that plan within 1 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _spawn import spawn_ranks

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.pipelining")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

RANKS, MICROBATCHES, DIM = 4, 4, 16
KINDS = {"gpipe": ("ScheduleGPipe", 1), "1f1b": ("Schedule1F1B", 1),
         "interleaved-1f1b": ("ScheduleInterleaved1F1B", 2),
         "zb-interleaved": ("ScheduleInterleavedZeroBubble", 2)}
CONFIG = dict(device="sim", sim_preset="a40", min_freq_mhz=1200, freq_step_mhz=250,
              progress=False)
P_BLOCK_W = 70.0
ENFORCE_STEPS = 2


def _model(chunks: int):
    torch.manual_seed(0)
    return [torch.nn.Sequential(torch.nn.Linear(DIM, DIM), torch.nn.Tanh()) for _ in range(chunks)]


def _build(kind: str, rank: int):
    import torch.distributed.pipelining as pp  # noqa: PLC0415
    import torch.distributed.pipelining.schedules as sched  # noqa: PLC0415

    cls_name, v = KINDS[kind]
    chunks = _model(RANKS * v)
    mine = [s for s in range(RANKS * v) if s % RANKS == rank]   # loop-style mapping
    stages = [pp.PipelineStage(chunks[s], s, RANKS * v, torch.device("cpu")) for s in mine]
    params = [p for s in mine for p in chunks[s].parameters()]
    cls = getattr(sched, cls_name)
    loss_fn = torch.nn.MSELoss()
    schedule = cls(stages[0] if v == 1 else stages, MICROBATCHES, loss_fn=loss_fn)
    return schedule, torch.optim.SGD(params, lr=0.1), mine, RANKS * v


def _train(schedule, opt, mine, num_stages, steps):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2 * MICROBATCHES, DIM, generator=g)
    y = torch.randn(2 * MICROBATCHES, DIM, generator=g)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        args = (x,) if 0 in mine else ()
        kw = {}
        mb_losses: list = []
        if num_stages - 1 in mine:
            kw = {"target": y, "losses": mb_losses}
        schedule.step(*args, **kw)
        opt.step()
        losses.append([float(v.detach()) for v in mb_losses])
    return losses


def _worker(rank: int, init_method: str, out_dir: str):
    import torch.distributed as dist  # noqa: PLC0415

    import gearshift.pipelining as gp  # noqa: PLC0415

    dist.init_process_group("gloo", init_method=init_method, rank=rank,
                            world_size=RANKS)
    result = {}
    try:
        for kind in KINDS:
            art = os.path.join(out_dir, kind)
            schedule, opt, mine, n = _build(kind, rank)
            wrapped, wopt, _, _ = _build(kind, rank)
            gp.wrap(wrapped, artifacts_dir=art, blocking_power_w=P_BLOCK_W, **CONFIG)
            runner = wrapped.gearshift
            # record + one profiling step per clock, then the enforced steps
            runner_clocks = 3          # 1740, 1485, 1230 MHz on the A40 with these options
            steps = 1 + runner_clocks + ENFORCE_STEPS
            ref = _train(schedule, opt, mine, n, steps)
            got = _train(wrapped, wopt, mine, n, steps)
            st = runner.status()
            result[kind] = {
                "ref": ref, "got": got, "status": st, "clocks": runner.clocks,
                "executed": runner.executed_clocks,
                "switched": [e.freq_mhz for e in runner.switch_events if e.action == "switched"],
                "program": [list(op) for op in runner.program],
            }
            dist.barrier()
    finally:
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(result, fh)
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipelining")
    # fork: the children inherit the imported torch and gearshift (spawning 4 fresh
    # interpreters costs about a minute on a loaded CPU)
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    spawn_ranks(_worker, RANKS, (str(out),), start_method=method)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(RANKS)]
    return out, ranks


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_wrapped_schedule_trains_like_the_original(runs, kind):
    _, ranks = runs
    for r in ranks:
        res = r[kind]
        assert res["clocks"] == [1740, 1485, 1230]
        assert res["status"]["phase"] == "enforce", res["status"]["fallback_reason"]
        assert res["status"]["steps_by_phase"]["enforce"] == ENFORCE_STEPS
        assert res["status"]["options_measured"] == res["status"]["options_total"] == 3
        assert res["got"] == res["ref"]          # equal losses, step by step
    assert any(r[kind]["got"][0] for r in ranks)  # the last stage's rank saw losses


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_clocks_follow_the_plan_and_sim_agrees(runs, kind):
    from gearshift.pipeline import PipelinePlan  # noqa: PLC0415
    from gearshift.pipeline.order import schedule_order  # noqa: PLC0415

    out, ranks = runs
    _, v = KINDS[kind]
    plan = PipelinePlan.load(out / kind / "plan.csv")
    order = schedule_order(kind, RANKS, MICROBATCHES, v)
    for rank, r in enumerate(ranks):
        res = r[kind]
        assert [tuple(op) for op in res["program"]] == list(order.rank_ops[rank])
        want = [int(plan.freq_mhz[s, k, m]) for s, k, m in order.rank_ops[rank]]
        assert res["executed"] == want
        changes = [f for i, f in enumerate(want) if i == 0 or f != want[i - 1]]
        assert res["switched"] == changes
    st = ranks[0][kind]["status"]
    sim = subprocess.run(
        [sys.executable, "-m", "gearshift", "sim", "pipeline", "--stage-profile",
         str(out / kind / "stage_profile.csv"), "--plan", str(out / kind / "plan.csv"),
         "--pipeline", kind, "--stages", str(RANKS), "--microbatches", str(MICROBATCHES),
         "--virtual-stages", str(v), "--blocking-power-w", str(P_BLOCK_W)],
        capture_output=True, text=True)
    assert sim.returncode == 0, sim.stderr
    line = sim.stdout.strip().splitlines()[-1]
    t, e = (float(x.split("=")[1]) for x in line.split())
    assert st["iteration_time_s"] == pytest.approx(t, rel=0.01)
    assert st["iteration_energy_j"] == pytest.approx(e, rel=0.01)
    assert all(r[kind]["status"]["iteration_time_s"] == st["iteration_time_s"] for r in ranks)
