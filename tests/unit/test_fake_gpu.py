"""The real-GPU path (record, profile online, plan, enforce) on the fake GPU: the simulator played
behind the fake CUPTI hook, the runtime's fake stream signals and a fake NVML energy counter."""

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gearshift  # noqa: E402
from gearshift.devices.fake_gpu import FakeGpuDevice, cuda_kernel_name  # noqa: E402
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


def attached(dev, model=None):
    """``dev`` with one step of ``model`` (default the tiny GPT) attached, and the CUPTI trace
    a record session makes of it."""
    from gearshift.runtime import Session
    from gearshift.trace import trace_step

    dev.attach(trace_step(model or tiny_gpt(), torch.randint(0, 256, (4, 32))))
    s = Session(mode="record", **dev.session_options()).start()
    try:
        s.step()
        dev.play_step(s)
        return s.to_trace(-1, model="tiny", device=dev.facts.name)
    finally:
        s.close()


def schedule_for(dev, trace, cuts, clocks):
    from gearshift.model import Partitioning, Schedule
    from gearshift.model.schedule import ScheduleEntry

    parts = Partitioning.from_cuts(trace, cuts)
    return Schedule([ScheduleEntry(p.index, p.start, f, signature=p.signature)
                     for p, f in zip(parts.partitions, clocks)],
                    trace.signature(), dev.facts.name, len(trace), objective="test")


def play(dev, schedule, trace, steps):
    from gearshift.runtime import Session

    s = Session(schedule, trace=trace, **dev.session_options()).start()
    try:
        backend = s.backend.name
        out = []
        for _ in range(steps):
            s.step()
            out.append(dev.play_step(s, schedule))
        return out, backend
    finally:
        s.close()


def test_the_native_nvml_backend_locks_the_schedules_clocks_in_the_fake_library():
    dev = FakeGpuDevice("h100-sxm", switch_latency_s=0.0)
    trace = attached(dev)
    n = len(trace)
    cuts, clocks = [0, n // 3, 2 * n // 3], [1500, 1980, 1200]
    sched = schedule_for(dev, trace, cuts, clocks)
    log0 = len(dev.nvml.lock_log())
    samples, backend = play(dev, sched, trace, 3)
    assert backend == "nvml"                                 # the runtime's real NVML backend
    log = dev.nvml.lock_log(log0)
    locks = [(t, f) for t, f in log if f]
    # every boundary of every step switched: the library saw exactly the schedule's switches,
    # each at the device time its partition started
    assert [f for _, f in locks] == clocks * 3
    starts = [b for smp in samples for b in smp.boundary_s]
    assert [t for t, _ in locks] == pytest.approx(starts, abs=1e-9)
    assert log[-1][1] == 0                                   # closing the session reset it
    # the energy counter was read through pynvml from the same library, in whole mJ
    assert all(isinstance(mj, int) for smp in samples for _, mj in smp.reads)
    # the library is the fake GPU's own: the driver's libnvidia-ml lookup never finds it
    from gearshift.devices import nvml_query
    rep = nvml_query.query()
    assert not any(g.uuid.startswith("GPU-fake") for g in rep.gpus)


def test_a_lock_lands_after_the_presets_switch_latency():
    dev = FakeGpuDevice("h100-sxm", switch_latency_s=0.002, noise_rel=0.0)
    trace = attached(dev)
    sched = schedule_for(dev, trace, [0], [1200])
    e_before, t_before = dev.nvml.exact_j(), dev.time_s()
    samples, _ = play(dev, sched, trace, 40)                 # ~0.3 ms of device time a step
    lock_t = next(t for t, f in dev.nvml.lock_log() if f == 1200)
    starts = [smp.boundary_s[0] for smp in samples] + [samples[-1].end_s]
    landed = [s for s in starts if s >= lock_t + 0.002]
    assert 3 < len(landed) < len(samples)                    # it took several steps to land
    assert dev.sm_clock_mhz() == 1200              # closing reset it, landing 2 ms later
    dev.nvml.advance(0.002, 0.002 * dev.preset.idle_power_w)
    assert dev.sm_clock_mhz() == 1980
    # the steps run at 1980 MHz until the lock landed, then at 1200 MHz: slower and cheaper
    sim = dev.sim
    from gearshift.model import Partitioning
    parts = Partitioning.from_cuts(dev.op_trace, [0])
    hi = sim.timeline(dev.op_trace, parts).run([1980], [gearshift.model.NO_OVERLAP],
                                               initial_freq_mhz=1980)
    lo = sim.timeline(dev.op_trace, parts).run([1200], [gearshift.model.NO_OVERLAP],
                                               initial_freq_mhz=1200)
    durations = np.diff(starts)
    assert durations[0] == pytest.approx(hi.time_s, abs=2e-9)      # device time: whole ns
    assert durations[-1] == pytest.approx(lo.time_s, abs=2e-9)
    spent = dev.nvml.exact_j() - e_before - 0.002 * dev.preset.idle_power_w
    n_hi = sum(1 for s in starts[:-1] if s + hi.time_s <= lock_t + 0.002)
    assert spent < len(samples) * hi.energy_j and spent > len(samples) * lo.energy_j
    assert n_hi >= 3 and dev.time_s() > t_before


def test_energy_counter_update_period_and_resolution_set_the_steps_a_percent_takes():
    """Read through NVML as the profiler reads it: stale between updates, whole mJ, and the
    window estimate reaches 1 % only after enough updates (more steps for a longer period)."""
    from gearshift.runtime import Session

    def steps_to_one_percent(period_s):
        dev = FakeGpuDevice("h100-sxm", update_period_s=period_s, seed=5)
        attached(dev)
        s = Session(mode="record", **dev.session_options()).start()
        try:
            reads, t0, e0 = [], dev.time_s(), dev.nvml.exact_j()
            for k in range(1, 4000):
                s.step()
                smp = dev.play_step(s)
                reads.extend(smp.reads)
                power, err = window_power_w(reads)
                if err <= 0.01:
                    true_w = (dev.nvml.exact_j() - e0) / (dev.time_s() - t0)
                    assert power == pytest.approx(true_w, rel=0.01)
                    changes = [b[0] for a, b in zip(reads, reads[1:]) if b[1] != a[1]]
                    gaps = np.diff(changes)
                    step_s = (dev.time_s() - t0) / k
                    assert gaps.min() >= period_s - 2 * step_s       # never faster than its period
                    assert all(isinstance(r[1], int) for r in reads)
                    return k
        finally:
            s.close()
        raise AssertionError("the counter never reached 1 %")

    fast, slow = steps_to_one_percent(0.005), steps_to_one_percent(0.05)
    assert fast < slow


def test_a_permission_error_from_nvml_means_predicted_mode_and_default_clocks():
    g = gearshift.compile(tiny_gpt(), device="fake-gpu", **FAST)
    dev = g.gearshift.device
    for fn in ("nvmlDeviceSetGpuLockedClocks", "nvmlDeviceResetGpuLockedClocks"):
        dev.nvml.set_return(fn, 4)                      # NVML_ERROR_NO_PERMISSION: no root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(g, until=enforced_for(3))
    st = g.gearshift.status()
    refused = [w for w in caught if "refused to lock" in str(w.message)]
    assert len(refused) == 1 and "NVML_ERROR_NO_PERMISSION" in str(refused[0].message)
    assert st["phase"] == "enforce" and st["mode"] == "predicted"
    assert st["fallback_reason"] is None and st["options_measured"] == 1
    assert dev.nvml.refused() >= 1
    assert [f for _, f in dev.nvml.lock_log() if f] == []     # no lock ever succeeded
    assert dev.sm_clock_mhz() == dev.facts.max_freq_mhz      # clocks at their default
    assert g.gearshift.online.session.backend.name == "dry-run"
    g.gearshift.close()


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
    assert by["record"] == 2 and by["plan"] == 1 and by["profile"] > 100 and by["enforce"] == 5
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

    # the next run starts at enforce after two record steps (the signature check: two steps in
    # a row must launch the same kernels)
    g2 = gearshift.compile(tiny_gpt(), device="fake-gpu", schedule_path=str(path), **FAST)
    train(g2, steps=5)
    st2 = g2.gearshift.status()
    assert st2["steps_by_phase"]["record"] == 2
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
