"""gearshift.compile wrapping a user's own small module on CPU with the simulated GPU."""

import pytest

import gearshift
from gearshift.errors import ConfigError, ScheduleMismatchError

# ---- wrapping (needs torch, the tracer, partitioner, simulator and search) -----------------
torch = pytest.importorskip("torch")
for mod in ("gearshift.trace", "gearshift.partition", "gearshift.devices.sim",
            "gearshift.search.iteration"):
    pytest.importorskip(mod)


class Small(torch.nn.Module):
    def __init__(self, width=128):
        super().__init__()
        self.a = torch.nn.Linear(32, width)
        self.b = torch.nn.Linear(width, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def train(model, steps=4):
    torch.manual_seed(0)
    x = torch.randn(64, 32)
    y = x[:, :1] * 2.0
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_wrap_user_module_on_cpu_with_simulated_gpu(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "sched.json"
    model = Small()
    g = gearshift.compile(model, device="sim", schedule_path=str(path), progress=False)
    with gearshift.measure("train") as m:
        losses = train(g)
    assert losses[-1] < losses[0]                        # the model really trained
    run = g.gearshift
    assert run.enforcer.iterations == 4 and run.loaded_from is None
    # the runtime's controller acted at every partition boundary of every replayed iteration
    events = run.enforcer.session.switch_events()
    assert len(events) == 4 * len(run.schedule.entries)
    assert {e.freq_mhz for e in events} == set(run.schedule.freqs_mhz())
    assert path.exists()
    assert m.source == "simulated" and m.time_s > 0 and m.energy_j("gpu") > 0
    # the window holds exactly the four simulated iterations
    one = run.enforcer.device.run_iteration(run.enforcer.trace, run.enforcer.partitioning,
                                            run.schedule, advance=False)
    assert m.time_s == pytest.approx(4 * one.time_s, rel=1e-6)
    s = run.savings()
    assert s["source"] == "simulated" and s["time_s"] <= s["baseline_time_s"] * (1 + 1e-9)

    # eval / no-grad calls do not count as training steps
    g.eval()
    with torch.no_grad():
        g(torch.randn(2, 32))
    assert run.enforcer.iterations == 4

    # a second wrap loads the saved schedule instead of planning
    g2 = gearshift.compile(Small(), device="sim", schedule_path=str(path), progress=False)
    train(g2, steps=1)
    assert g2.gearshift.loaded_from == str(path) and g2.gearshift.plan is None
    assert g2.gearshift.schedule.to_json() == run.schedule.to_json()


def test_saved_schedule_for_another_model_or_device_is_refused(tmp_path):
    path = tmp_path / "sched.json"
    g = gearshift.compile(Small(), device="sim", schedule_path=str(path), progress=False,
                          example_inputs=torch.randn(8, 32))
    assert g.gearshift.ready
    with pytest.raises(ScheduleMismatchError, match="another model") as exc:
        gearshift.compile(Small(width=64), device="sim", schedule_path=str(path),
                          progress=False, example_inputs=torch.randn(8, 32), strict=True)
    assert "re-plan" in exc.value.fix
    with pytest.raises(ScheduleMismatchError, match="another device"):
        gearshift.compile(Small(), device="sim", sim_preset="a100-sxm", schedule_path=str(path),
                          progress=False, example_inputs=torch.randn(8, 32), strict=True)
    # without strict, training goes on untouched: one warning that names the fix, phase fallback
    torch.manual_seed(0)
    eager = train(Small(width=64), steps=2)
    torch.manual_seed(0)
    with pytest.warns(RuntimeWarning, match="loading the saved schedule.*another model.*re-plan"):
        g = gearshift.compile(Small(width=64), device="sim", schedule_path=str(path),
                              progress=False, example_inputs=torch.randn(8, 32))
    assert train(g, steps=2) == eager
    st = g.gearshift.status()
    assert st["phase"] == "fallback" and "another model" in st["fallback_reason"]
    assert "fell back" in st["explanation"]


def test_compile_rejects_non_modules():
    with pytest.raises(ConfigError, match="nn.Module"):
        gearshift.compile(lambda x: x)


def test_compile_with_a_daemon_device_enforces_through_the_daemon(tmp_path):
    """`device="daemon:/path.sock"` from gearshift.compile: plan on the simulated H100, then
    enforce the saved schedule with clocks switched by a dry-run daemon (the documented way to
    run without root). On a CPU no kernels launch, so the test replays the traced step's
    launches through the runtime's hook; each boundary's clock request reaches the daemon."""
    from test_daemon import Daemon

    path = tmp_path / "sched.json"
    x = torch.randn(8, 32)
    gearshift.compile(Small(), device="sim", sim_preset="h100-sxm", schedule_path=str(path),
                      progress=False, example_inputs=x)
    d = Daemon(backend="dry-run")
    try:
        g = gearshift.compile(Small(), device=f"daemon:{d.socket}", sim_preset="h100-sxm",
                              schedule_path=str(path), progress=False, example_inputs=x)
        run = g.gearshift
        assert run.device.kind == "daemon" and run.loaded_from == str(path)
        session = run.enforcer.session
        assert session.backend.name == "daemon"
        assert session.backend is run.device.clock_backend()   # one connection to the daemon
        events = session.replay(run.enforcer.trace, 1)
        switched = [e for e in events if e.action == "switched"]
        assert switched, events
        for e in switched:
            d.wait_event(rf"lock gpu=0 mhz={e.freq_mhz}")
        # Training on the CPU launches no CUDA kernels: the runtime sees the mismatch, says so
        # once, restores the clocks, and the user's steps still run.
        with pytest.warns(RuntimeWarning, match="launched 0 kernels"):
            losses = train(g, steps=2)
        assert losses[-1] < losses[0]
        run.enforcer.close()
        d.wait_event(r"reset gpu=0")
    finally:
        d.close()
