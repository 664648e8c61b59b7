"""The in-loop path runs a step split into the schedule's nanobatches (record, profile, plan,
enforce), or falls back with the reason when the step cannot be split (one process, the fake
GPU)."""

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")

import gearshift  # noqa: E402
from gearshift.model import Schedule  # noqa: E402

# two clocks: the profile phase stays short
FAST = dict(min_freq_mhz=1500, freq_step_mhz=400, objective="max-slowdown=1.1", progress=False)


class Small(torch.nn.Module):
    def __init__(self, norm=False):
        super().__init__()
        self.fc1 = torch.nn.Linear(32, 64)
        self.norm = torch.nn.BatchNorm1d(64) if norm else torch.nn.Identity()
        self.fc2 = torch.nn.Linear(64, 1)

    def forward(self, x):
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train(model, steps=None, until=None):
    torch.manual_seed(0)
    x = torch.randn(16, 32)
    y = x[:, :1] * 2.0
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps or 20000):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if until is not None and until(model.gearshift.status()):
            break
    return losses


def _enforced(n):
    return lambda st: st["phase"] in ("enforce", "fallback") and (
        st["phase"] == "fallback" or st["steps_by_phase"]["enforce"] >= n)


def test_a_schedule_planned_with_two_nanobatches_runs_with_two(tmp_path):
    torch.manual_seed(0)
    model = Small()
    eager = copy.deepcopy(model)
    path = tmp_path / "sched.json"
    g = gearshift.compile(model, device="fake-gpu", nanobatches=2, schedule_path=str(path),
                          **FAST)
    losses = _train(g, until=_enforced(3))
    st = g.gearshift.status()
    assert st["phase"] == "enforce", st["fallback_reason"]
    assert st["nanobatches"] == 2 and st["overlap_applied"] is True
    assert g.gearshift.schedule.nanobatches == 2
    assert g.gearshift.online.trace.nanobatches == 2        # recorded split, tagged
    assert "nothing to overlap" in st["overlap_profile"]     # no collective: clocks only
    assert losses == pytest.approx(_train(eager, steps=len(losses)), rel=1e-5, abs=1e-6)
    g.gearshift.close()
    assert Schedule.load(path).nanobatches == 2

    # the next run takes the saved schedule's nanobatches, whatever the config says
    g2 = gearshift.compile(Small(), device="fake-gpu", schedule_path=str(path), **FAST)
    _train(g2, steps=5)
    st2 = g2.gearshift.status()
    assert g2.gearshift.loaded_from == str(path)
    assert st2["phase"] == "enforce" and st2["steps_by_phase"]["profile"] == 0
    assert st2["nanobatches"] == 2 and st2["overlap_applied"] is True
    g2.gearshift.close()


def test_a_step_that_cannot_be_split_falls_back_with_the_reason():
    torch.manual_seed(0)
    model = Small(norm=True)
    eager = copy.deepcopy(model)
    g = gearshift.compile(model, device="fake-gpu", nanobatches=2, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        losses = _train(g, steps=6)
    st = g.gearshift.status()
    assert st["phase"] == "fallback"
    why = st["fallback_reason"]
    assert "2 nanobatches" in why and "could not be split" in why and "in place" in why
    assert st["steps_by_phase"]["fallback"] >= 4
    # the user's steps ran: the first split (before the pass refused), the rest untouched
    assert losses == pytest.approx(_train(eager, steps=6), rel=1e-5, abs=1e-6)
    g.gearshift.close()
