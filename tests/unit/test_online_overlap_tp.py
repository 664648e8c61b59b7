"""The in-loop path profiles overlap options: 2 gloo ranks train a tensor-parallel block on the
fake GPU through record -> profile (clocks x overlaps) -> plan -> enforce.

Each profiling round's probe is placed by the overlap pass (its collectives launched and
waited where the probe says, the step split into 2 nanobatches), and the fake GPU plays what
was placed with the simulator's dependency-true overlap model. The losses must equal the
unwrapped model's; the options measured must include overlap options; the plan from the measured
profile must be within 1 % energy of the plan made from the simulator directly (what the clock
path meets); the enforced schedule runs 2 nanobatches.
"""

from __future__ import annotations

import copy
import json
import os
import warnings

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is needed", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402
from _spawn import spawn_ranks  # noqa: E402
from _tp import WORLD, TPBlock  # noqa: E402

DEVICE = "fake-gpu-tp-test"
# two clocks x two overlaps: every option is measured (exhaustive), the profile stays short
OPTS = dict(nanobatches=2, overlaps=("serial", "window0-99"), min_freq_mhz=1500,
            freq_step_mhz=400, objective="max-slowdown=1.05", progress=False)
ENFORCE_STEPS = 4


def _device(rank):
    """The fake H100 with a 60 us clock switch (partitions of several collectives on this
    0.26 ms step) and a 1 ms energy counter period (rounds of a few hundred steps)."""
    from gearshift.devices.fake_gpu import FakeGpuDevice
    from gearshift.devices.open import register
    from gearshift.devices.sim.presets import get_preset

    preset = get_preset("h100-sxm").with_(switch_latency_s=6e-5)
    register(DEVICE, lambda arg, **_: FakeGpuDevice(preset, update_period_s=1e-3, seed=rank),
             replace=True, help="tests: fake H100, 5 us switch, 1 ms energy counter")


def _loop(model, x, target, steps=None, until=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps or 20000):
        loss = F.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if until is not None and until(model.gearshift.status()):
            break
    return losses


def _simulator_plan_energy(run, objective):
    """(energy of the measured plan, of the plan made from the simulator directly), both run
    on the simulator: the same trace, cuts and options."""
    from gearshift.devices.sim import SimDevice
    from gearshift.model import Partitioning
    from gearshift.profile import profile_partitions
    from gearshift.search.iteration import plan_iteration

    online = run.online
    op = online.op_trace
    parts = Partitioning.from_cuts(op, [p.start for p in online.partitioning.partitions])
    sim = SimDevice(run.device.preset)
    sim_prof = profile_partitions(op, parts, sim, freqs_mhz=online.search.candidates,
                                  overlaps=OPTS["overlaps"], progress=False)
    _, sim_sched = plan_iteration(sim_prof, parts, objective=objective, nanobatches=2)

    def energy(schedule):
        return sim.run_iteration(op, parts, [(e.freq_mhz, e.overlap) for e in schedule.entries],
                                 advance=False).energy_j
    return energy(run.schedule), energy(sim_sched)


def _worker(rank, init_method, out_dir):
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=WORLD)
    try:
        import gearshift

        _device(rank)
        torch.manual_seed(1234 + rank)             # each rank holds its own shards
        model = TPBlock(dist.group.WORLD.group_name)
        torch.manual_seed(99)                      # the same data on every rank
        x, target = torch.randn(4, 6, 16), torch.randn(4, 6, 16)
        eager = copy.deepcopy(model)

        g = gearshift.compile(model, device=DEVICE, **OPTS)
        losses = _loop(g, x, target, until=lambda st: st["phase"] == "fallback" or (
            st["phase"] == "enforce" and st["steps_by_phase"]["enforce"] >= ENFORCE_STEPS))
        run = g.gearshift
        st = run.status()
        out = {"losses": losses, "eager": _loop(eager, x, target, steps=len(losses)),
               "status": {k: v for k, v in st.items() if k != "partitions"},
               "placed": st["partitions"],
               "schedule_nanobatches": run.schedule.nanobatches if run.schedule else None,
               "overlaps": sorted({e.overlap.key() for e in run.schedule.entries})
               if run.schedule else [],
               "sources": run.online.profile.extra["option_source"] if run.online.profile
               else {},
               "bounds": run.online.profile.extra["energy_error_bound"] if run.online.profile
               else {}}
        if st["phase"] == "enforce":
            out["measured_j"], out["simulated_j"] = _simulator_plan_energy(run, OPTS["objective"])
        run.close()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(out, f)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("online_overlap_tp")
    spawn_ranks(_worker, WORLD, (str(out_dir),), timeout_s=900)
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_every_phase_runs_and_losses_equal_the_unwrapped_models(results):
    for r in results:
        st = r["status"]
        assert st["phase"] == "enforce", (st["fallback_reason"], st["explanation"])
        by = st["steps_by_phase"]
        assert by["record"] == 2 and by["plan"] == 1 and by["profile"] > 10
        assert by["enforce"] == ENFORCE_STEPS
        assert len(r["losses"]) == sum(by.values())
        for got, want in zip(r["losses"], r["eager"]):
            assert abs(got - want) <= 1e-5, (r["losses"][:5], r["eager"][:5])
    assert results[0]["eager"][-1] < results[0]["eager"][0]
    # both ranks ran the same probes, step for step
    assert results[0]["status"]["steps_by_phase"] == results[1]["status"]["steps_by_phase"]


def test_overlap_options_are_measured_online(results):
    for r in results:
        st = r["status"]
        keys = list(st["steps_per_option"])
        assert any(k.endswith("/window0-99") for k in keys), keys
        assert any(k.endswith("/none") for k in keys), keys
        assert "window0-99" in st["overlap_profile"] and "2 nanobatch" in st["overlap_profile"]
        assert st["options_measured"] == st["options_total"]          # 2 x 2: exhaustive
        windows = {k: v for k, v in r["sources"].items() if "window" in k}
        assert windows and set(windows.values()) == {"measured"}
        assert all(b <= 0.01 for b in r["bounds"].values())           # <= 1 % per option


def test_the_measured_plan_is_within_one_percent_of_the_simulators(results):
    r = results[0]
    assert r["measured_j"] == pytest.approx(r["simulated_j"], rel=0.01)


def test_the_enforced_schedule_runs_its_nanobatches_and_overlap(results):
    for r in results:
        st = r["status"]
        assert r["schedule_nanobatches"] == 2 and st["nanobatches"] == 2
        assert st["overlap_applied"] is True and st["overlap_skipped_reason"] is None
        # what the pass placed is the schedule's overlap
        assert {p["overlap"] for p in r["placed"]} <= set(r["overlaps"]) | {"serial"}
    assert results[0]["overlaps"] == results[1]["overlaps"]           # rank 0's plan on both
