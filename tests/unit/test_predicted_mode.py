"""Predicted mode (no permission to lock clocks): every partition is measured at the default
clock only, and its other clocks are predicted from its own measurement with the simulated
GPU's response fitted per partition (profile/predicted.py). On the fake GPU the simulator is
the truth, so what is checked is the fit and the measurement: the prediction against the fake
GPU's true per-partition values, and against the old whole-step ratios."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gearshift  # noqa: E402
from gearshift.devices.fake_gpu import FakeGpuDevice  # noqa: E402
from gearshift.devices.open import register  # noqa: E402
from gearshift.devices.sim import SimDevice  # noqa: E402
from gearshift.devices.sim.presets import get_preset  # noqa: E402
from gearshift.model import Partitioning  # noqa: E402

from test_online_attribution import GemmThenMemory, _loss  # noqa: E402

SWITCH_LATENCY_S = 5e-4


def _preset():
    return get_preset("h100-sxm").with_(switch_latency_s=SWITCH_LATENCY_S)


register("fake-gpu-test-nolock", lambda arg, **_: FakeGpuDevice(_preset(), may_lock_clocks=False),
         replace=True, help="tests: the fake H100 (0.5 ms switch) without clock permission")


@pytest.fixture(scope="module")
def predicted_run():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = gearshift.compile(GemmThenMemory(), device="fake-gpu-test-nolock", loss_fn=_loss,
                          objective="cost=0.5", min_freq_mhz=900, freq_step_mhz=300,
                          progress=False, strict=True)
    run = g.gearshift
    x = torch.zeros(4096, 4096)
    for _ in range(5000):
        run.guarded_step((x,))
        if run.phase in ("enforce", "fallback"):
            break
    yield run
    run.close()


def _truth(run):
    on = run.online
    op = on.op_trace
    parts = Partitioning.from_cuts(op, [p.start for p in on.partitioning.partitions])
    freqs = on.search.candidates
    t, e = SimDevice(_preset()).profile_options(op, parts, [(f, "none") for f in freqs])
    return freqs, t, e


@pytest.mark.slow
def test_predicted_per_partition_matches_the_fake_gpus_true_values(predicted_run):
    run = predicted_run
    st = run.status()
    assert st["phase"] == "enforce" and st["mode"] == "predicted", st["fallback_reason"]
    assert st["saving_label"] == "predicted"
    P = len(run.online.partitioning)
    assert P >= 4 and st["options_measured"] == P        # the default clock only
    prof = run.online.profile
    assert "fitted" in prof.extra["energy_split"]
    freqs, t_true, e_true = _truth(run)
    by = {(e.partition, e.freq_mhz): e for e in prof.entries}
    t_err = np.array([[by[(p, f)].time_s / t_true[i, p] - 1 for p in range(P)]
                      for i, f in enumerate(freqs)])
    e_err = np.array([[by[(p, f)].energy_j / e_true[i, p] - 1 for p in range(P)]
                      for i, f in enumerate(freqs)])
    # "predicted": per-partition time and energy at every clock within 1 % of the truth
    assert np.abs(t_err).max() <= 0.01, t_err
    assert np.abs(e_err).max() <= 0.01, e_err

    # the old prediction scaled every partition by the whole step's ratios (and split the
    # reference energy by time): partitions unlike the step's average are mispredicted
    t_step, e_step = t_true.sum(axis=1), e_true.sum(axis=1)
    share = t_true[0] / t_true[0].sum()
    old_t = t_true[0][None, :] * (t_step / t_step[0])[:, None]
    old_e = (share * e_step[0])[None, :] * (e_step / e_step[0])[:, None]
    old_t_err, old_e_err = old_t / t_true - 1, old_e / e_true - 1
    assert np.abs(old_t_err).max() > 0.05 and np.abs(old_e_err).max() > 0.05
