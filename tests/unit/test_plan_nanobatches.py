"""The runner's own planner (gearshift.plan.plan_for) makes nanobatched schedules when the
config asks for them, the way `gearshift trace --nanobatches K` + `gearshift plan` do."""

import copy

import pytest

torch = pytest.importorskip("torch")

import gearshift  # noqa: E402
from gearshift.errors import ConfigError, TraceError  # noqa: E402
from gearshift.integrations.config import GearshiftConfig  # noqa: E402

# few options keep planning quick; window choices are what nanobatching makes worth having
FAST = dict(min_freq_mhz=1110, freq_step_mhz=150, overlaps=("serial", "window0-99", "window2-99"))


def test_plan_for_plans_the_split_trace_and_records_it():
    from gearshift.devices.sim import SimDevice
    from gearshift.plan import plan_for
    from gearshift.search.iteration import plan_iteration
    from gearshift.trace import trace_preset

    dev = SimDevice("a100-sxm")
    trace = trace_preset("llama-tiny-tp2", nanobatches=2)
    cfg = GearshiftConfig(device="sim", nanobatches=2, progress=False, **FAST)
    plan = plan_for(trace, dev, cfg)
    s = plan.schedule
    assert s.nanobatches == 2 and s.model_signature == trace.signature()
    assert plan.trace is trace and len(plan.partitioning) == len(s.entries)
    # the split pairs one nanobatch's collective with the other's compute, so the plan hides
    # collectives in windows rather than running them serial as the baseline does
    comm = [e for e, p in zip(s.entries, plan.partitioning.partitions) if p.has_comm]
    assert comm and any(e.overlap.mode == "window" for e in comm)
    # one way to plan: what `gearshift plan` computes from the same profile and partitioning
    _, again = plan_iteration(plan.profile, plan.partitioning, trace.signature(),
                              dev.facts.name, objective=cfg.objective,
                              nanobatches=trace.nanobatches)
    assert [(e.freq_mhz, e.overlap) for e in again.entries] == \
        [(e.freq_mhz, e.overlap) for e in s.entries] and again.nanobatches == 2


def test_plan_for_refuses_a_trace_split_otherwise():
    from gearshift.devices.sim import SimDevice
    from gearshift.plan import plan_for
    from gearshift.trace import trace_preset

    dev = SimDevice("a100-sxm")
    whole = trace_preset("llama-tiny-tp2")
    with pytest.raises(ConfigError, match="asks for 2 nanobatches, the trace is split into 1"):
        plan_for(whole, dev, GearshiftConfig(device="sim", nanobatches=2, progress=False))
    split = trace_preset("llama-tiny-tp2", nanobatches=2)
    with pytest.raises(ConfigError, match="asks for 1 nanobatches, the trace is split into 2"):
        plan_for(split, dev, GearshiftConfig(device="sim", progress=False))


def test_config_and_inputs_are_checked():
    from gearshift.trace.nanobatch import nanobatch_inputs

    with pytest.raises(ConfigError, match="nanobatches=0"):
        GearshiftConfig(nanobatches=0)
    assert GearshiftConfig.from_json(GearshiftConfig(nanobatches=2).to_json()).nanobatches == 2
    with pytest.raises(TraceError, match="batch of 7 does not split into 2"):
        nanobatch_inputs(torch.zeros(7, 3), 2)
    with pytest.raises(TraceError, match="do not share a batch dimension"):
        nanobatch_inputs((torch.zeros(8, 3), torch.zeros(6, 3)), 2)
    x, kw = nanobatch_inputs((torch.zeros(8, 3), {"m": torch.ones(8), "s": 2.0}), 4)
    assert x.shape == (2, 3) and kw["m"].shape == (2,) and kw["s"] == 2.0


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(32, 64)
        self.b = torch.nn.Linear(64, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _train(model, params, steps=3):
    torch.manual_seed(0)
    x = torch.randn(16, 32)
    y = x[:, :1] * 2.0
    opt = torch.optim.SGD(params, lr=0.05)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_trace_step_splits_or_names_what_cannot_be_split():
    from gearshift.trace import trace_step

    x, y = torch.randn(16, 32), torch.randn(16, 1)
    whole = trace_step(Small(), x, lambda out: torch.nn.functional.mse_loss(out, y))
    split = trace_step(Small(), (x,), nanobatches=2)
    assert whole.nanobatches == 1 and split.nanobatches == 2
    assert {k.nanobatch for k in split.kernels if k.phase == "forward"} == {0, 1}
    # a loss that reads a batch-sized tensor besides the inputs cannot run on one nanobatch
    with pytest.raises(TraceError, match="pass every batch-sized tensor"):
        trace_step(Small(), x, lambda out: torch.nn.functional.mse_loss(out, y), nanobatches=2)


def test_compile_plans_runs_and_reloads_a_nanobatched_schedule(tmp_path):
    torch.manual_seed(0)
    model = Small()
    ref = copy.deepcopy(model)
    path = tmp_path / "sched.json"
    g = gearshift.compile(model, device="sim", sim_preset="a100-sxm", nanobatches=2,
                          schedule_path=str(path), progress=False, strict=True, **FAST)
    losses = _train(g, model.parameters())
    assert losses == pytest.approx(_train(ref, ref.parameters()), rel=1e-5, abs=1e-6)
    run = g.gearshift
    st = run.status()
    assert st["phase"] == "enforce" and st["fallback_reason"] is None
    assert run.plan is not None and run.schedule.nanobatches == 2
    assert run.enforcer.trace.nanobatches == 2         # the simulated step is the split one
    assert st["nanobatches"] == 2 and st["overlap_applied"]     # and the program runs split
    g2 = gearshift.compile(Small(), device="sim", sim_preset="a100-sxm", nanobatches=2,
                           schedule_path=str(path), progress=False, strict=True, **FAST)
    _train(g2, g2.parameters(), steps=1)
    assert g2.gearshift.loaded_from == str(path) and g2.gearshift.plan is None
    assert g2.gearshift.schedule.to_json() == run.schedule.to_json()
