"""The real-GPU path (record, profile online, plan, enforce) on the fake GPU: the simulator played
behind the fake CUPTI hook, the runtime's fake stream signals and a fake NVML energy counter."""

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gearshift  # noqa: E402
from gearshift.devices.fake_gpu import FakeEnergyCounter, FakeGpuDevice, cuda_kernel_name  # noqa: E402
from gearshift.profile.online import window_power_w  # noqa: E402
from gearshift.trace import zoo  # noqa: E402

STATUS_KEYS = {"phase", "steps_by_phase", "options_measured", "options_total",
               "planned_energy_saving_pct", "fallback_reason"}
# three candidate clocks keep the profile phase short on a CPU
FAST = dict(min_freq_mhz=1500, freq_step_mhz=240, objective="max-slowdown=1.1", progress=False)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)        # the shared CI cores: tiny ops are slower with many threads
    yield
    torch.set_num_threads(n)


def tiny_gpt():
    torch.manual_seed(0)
    cfg = zoo.GPTConfig(layers=2, hidden=64, heads=4, seq=32, batch=4, vocab=256,
                        dtype="float32")
    return zoo.GPT(cfg)


def train(model, steps=None, until=None, seed=1):
    """Plain training loop; ``until(status)`` stops early (checked after every step)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for i in range(steps or 5000):
        idx = torch.randint(0, 256, (4, 32), generator=g)
        logits = model(idx)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if until is not None and until(model.gearshift.status()):
            break
    return losses


def enforced_for(n):
    return lambda st: st["phase"] == "enforce" and st["steps_by_phase"]["enforce"] >= n


def test_kernel_names_are_what_cuda_libraries_launch():
    from gearshift.trace import trace_step

    tr = trace_step(tiny_gpt(), torch.randint(0, 256, (4, 32)))
    names = [cuda_kernel_name(k, "hopper") for k in tr.kernels]
    ops = [k.op for k in tr.kernels]
    assert any("sm90_xmma_gemm" in n and "cublas" in n for n in names)
    assert all("gemm" in n for n, op in zip(names, ops) if op in ("aten::mm", "aten::addmm"))
    assert any("multi_tensor_apply_kernel" in n for n in names)       # AdamW(foreach)
    assert any("vectorized_layer_norm_kernel" in n for n in names)
    assert all("aten::" not in n for n in names)
    assert "ampere" in cuda_kernel_name(next(k for k in tr.kernels if k.op == "aten::mm"),
                                        "ampere")


def test_energy_counter_is_stale_quantised_and_windowing_bounds_its_error():
    c = FakeEnergyCounter(update_period_s=0.02, noise_rel=0.002, seed=3)
    c.advance(0.015, 300.0)
    assert c.read_mj() == 0                     # no update published yet
    c.advance(0.010, 300.0)                     # crosses the 20 ms update
    assert c.read_mj() == pytest.approx(6000, rel=0.01) and isinstance(c.read_mj(), int)
    reads = [(c.now_s, c.read_mj())]
    for _ in range(400):                        # 0.4 s of 1 ms steps at 250 W
        c.advance(0.001, 250.0)
        reads.append((c.now_s, c.read_mj()))
    power, err = window_power_w(reads)
    assert err < 0.01
    assert power == pytest.approx(250.0, rel=err + 0.002)
    assert window_power_w(reads[:10])[0] is None          # fewer than two updates: no answer


def test_small_gpt_trains_through_every_phase_and_matches_the_simulator(tmp_path):
    from gearshift.devices.sim import SimDevice
    from gearshift.model import Partitioning
    from gearshift.profile import profile_partitions
    from gearshift.search.iteration import plan_iteration

    model = tiny_gpt()
    eager = copy.deepcopy(model)
    path = tmp_path / "sched.json"
    g = gearshift.compile(model, device="fake-gpu", schedule_path=str(path), **FAST)
    losses = train(g, until=enforced_for(5))
    st = g.gearshift.status()
    assert STATUS_KEYS <= set(st)
    by = st["steps_by_phase"]
    assert by["record"] == 1 and by["plan"] == 1 and by["profile"] > 100 and by["enforce"] == 5
    assert st["phase"] == "enforce" and st["fallback_reason"] is None
    assert 0 < st["options_measured"] <= st["options_total"]
    assert st["mode"] == "measured" and st["saving_label"] == "planned from measured profile"
    # every measured clock took enough steps for the counter's error to reach 1 %
    prof = g.gearshift.online.profile
    assert all(v <= 0.01 for v in prof.extra["energy_error_bound"].values())
    assert sum(st["steps_per_option"].values()) <= by["profile"]
    # losses are eager's: gearshift never touches the math
    assert losses == train(eager, steps=len(losses))
    # the recorded trace carries CUDA library names; the schedule was made for it
    run = g.gearshift
    trace = run.online.trace
    assert trace.source == "cupti" and run.schedule.model_signature == trace.signature()
    assert path.exists()

    # the measured plan is within 1 % energy of the plan made from the simulator directly
    op = run.online.op_trace
    parts = Partitioning.from_cuts(op, [p.start for p in run.online.partitioning.partitions])
    sim = SimDevice("h100-sxm")
    freqs = run.online.search.candidates
    sim_prof = profile_partitions(op, parts, sim, freqs_mhz=freqs, overlaps=("serial",),
                                  progress=False)
    _, sim_sched = plan_iteration(sim_prof, parts, objective=FAST["objective"])

    def energy(schedule):
        return sim.run_iteration(op, parts, [(e.freq_mhz, "none") for e in schedule.entries],
                                 advance=False).energy_j
    assert energy(run.schedule) == pytest.approx(energy(sim_sched), rel=0.01)
    assert st["planned_energy_saving_pct"] > 0
    g.gearshift.close()

    # the next run starts at enforce after one record step (the signature check)
    g2 = gearshift.compile(tiny_gpt(), device="fake-gpu", schedule_path=str(path), **FAST)
    train(g2, steps=4)
    st2 = g2.gearshift.status()
    assert st2["steps_by_phase"]["profile"] == 0 and st2["steps_by_phase"]["enforce"] == 3
    assert g2.gearshift.loaded_from == str(path)
    g2.gearshift.close()


def test_hugging_face_model_trains_through_every_phase():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=128,
                                  n_positions=32, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg)
    eager = copy.deepcopy(model)
    g = gearshift.compile(model, device="fake-gpu", loss_fn=lambda out: out.loss, **FAST)

    def loop(m, steps=None, until=None):
        gen = torch.Generator().manual_seed(2)
        torch.manual_seed(3)                # dropout draws from the global stream
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        out = []
        for _ in range(steps or 5000):
            ids = torch.randint(0, 128, (2, 16), generator=gen)
            loss = m(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            out.append(loss.item())
            if until is not None and until(m.gearshift.status()):
                break
        return out

    losses = loop(g, until=enforced_for(3))
    st = g.gearshift.status()
    assert all(st["steps_by_phase"][p] >= 1 for p in ("record", "profile", "plan", "enforce"))
    assert st["fallback_reason"] is None
    assert losses == loop(eager, steps=len(losses))
    g.gearshift.close()


def test_without_clock_permission_profiles_the_default_clock_and_predicts(monkeypatch):
    monkeypatch.setenv("GEARSHIFT_FAKE_GPU", "h100-sxm")
    monkeypatch.setenv("GEARSHIFT_FAKE_GPU_LOCK", "0")
    g = gearshift.compile(tiny_gpt(), **FAST)               # device auto -> the fake GPU
    assert isinstance(g.gearshift.device, FakeGpuDevice)
    train(g, until=enforced_for(3))
    st = g.gearshift.status()
    assert st["mode"] == "predicted" and st["saving_label"] == "predicted"
    assert st["options_measured"] == 1 and st["options_total"] == 3
    session = g.gearshift.online.session
    assert session.backend.name == "dry-run"                  # switches logged, never made
    assert g.gearshift.device.sim.sm_clock_mhz == g.gearshift.device.facts.max_freq_mhz
    src = g.gearshift.online.profile.extra["option_source"]
    assert sorted(src.values()) == ["measured", "predicted", "predicted"]
    g.gearshift.close()


def test_drift_reenters_profile_and_a_failure_falls_back():
    g = gearshift.compile(tiny_gpt(), device="fake-gpu", **FAST)
    train(g, until=enforced_for(2))
    g.gearshift.device.slowdown = 1.5                          # the workload changed
    train(g, until=lambda st: st["phase"] == "profile")
    assert g.gearshift.status()["drift_events"] == 1
    assert g.gearshift.online.drifted == [0]

    def broken(*a, **k):
        raise RuntimeError("fake NVML lost the GPU")
    g.gearshift.device.play_step = broken
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = train(g, steps=3)
    st = g.gearshift.status()
    assert st["phase"] == "fallback" and "lost the GPU" in st["fallback_reason"]
    assert st["steps_by_phase"]["fallback"] == 3 and len(losses) == 3
    assert sum("training continues without gearshift" in str(w.message) for w in caught) == 1


def test_status_has_the_same_keys_on_the_simulated_gpu():
    g = gearshift.compile(tiny_gpt(), device="sim", progress=False)
    train(g, steps=2)
    st = g.gearshift.status()
    assert STATUS_KEYS <= set(st) and st["phase"] == "enforce"
    assert st["steps_by_phase"]["enforce"] == 2 and st["mode"] == "simulated"
    assert st["options_total"] > 0 and st["planned_energy_saving_pct"] is not None
    g.gearshift.close()
