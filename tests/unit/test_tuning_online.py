import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.tuning.online import OnlineConfig, OnlineTuner

CANDS = list(range(2000, 399, -100))


class ToyRunner:
    """Roofline partitions: time max(a/f, b); dynamic energy c*a*f^2; static power paid on
    time. Compute-bound partitions' best clock is (static/2c)^(1/3); memory-bound ones can go
    down to a/b for free, so partitions differ."""

    def __init__(self, a, b, c=5e-8, static_w=250.0, noise=0.005, seed=0):
        self.a, self.b = np.asarray(a, float), np.asarray(b, float)
        self.c, self.static_w = c, static_w
        self.num_partitions = len(a)
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.true_time_s = 0.0

    def truth(self, freqs):
        f = np.asarray(freqs, float)
        t = np.maximum(self.a / f, self.b)
        return t, t * self.static_w + self.c * self.a * f ** 2

    def run(self, freqs):
        t, e = self.truth(freqs)
        self.true_time_s += t.sum()
        k = self.rng.normal(1, self.noise, (2, len(t)))
        return t * k[0], e * k[1]

    def best(self, eta=1.0, p_ref=700.0):
        grid = np.array([self.truth([f] * self.num_partitions) for f in CANDS])  # (F, 2, P)
        cost = eta * grid[:, 1] + (1 - eta) * p_ref * grid[:, 0]
        return [CANDS[i] for i in cost.argmin(0)]


def test_cold_start_finds_each_partitions_best_clock():
    runner = ToyRunner(a=[20.0, 2.0, 8.0], b=[0.001, 0.004, 0.004])
    tuner = OnlineTuner(runner, OnlineConfig(CANDS, eta=1.0))
    tuner.run(80)
    assert not tuner.profiling
    best = runner.best()
    assert len(set(best)) > 1                       # partitions really differ
    for got, want in zip(tuner.plan_mhz(), best):
        assert abs(CANDS.index(got) - CANDS.index(want)) <= 1
    modes = [e.mode for e in tuner.log]
    assert modes[0] == "profile" and modes[-1] in ("exploit", "explore")
    assert modes.count("profile") < 40


def test_stall_budget_bounds_profiling_slowdown():
    def extra(budget):
        runner = ToyRunner(a=[20.0, 20.0], b=[0.0, 0.0], noise=0.0)
        tuner = OnlineTuner(runner, OnlineConfig(CANDS, eta=1.0, stall_budget_s=budget,
                                                 max_partition_slowdown=10.0))
        tuner.run(60)
        top = runner.truth([CANDS[0]] * 2)[0].sum()
        prof = [e.time_s - top for e in tuner.log if e.mode == "profile"]
        return sum(max(0.0, x) for x in prof), max(prof)

    spent_free, _ = extra(float("inf"))
    spent, worst_iteration = extra(0.02)
    assert spent < spent_free
    assert spent <= 0.02 + worst_iteration           # the budget can be overrun by one iteration


def test_drift_is_detected_and_plan_recovers():
    runner = ToyRunner(a=[20.0, 2.0], b=[0.001, 0.004])
    tuner = OnlineTuner(runner, OnlineConfig(CANDS, eta=1.0, explore_rate=0.0))
    tuner.run(60)
    before = tuner.plan_mhz()
    runner.a, runner.b = np.array([2.0, 20.0]), np.array([0.004, 0.001])     # roles swap
    logs = tuner.run(60)
    detected = next(i for i, e in enumerate(logs) if e.drifted)
    assert detected <= tuner.cfg.reference_iterations + tuner.cfg.drift_patience + 1
    after = tuner.plan_mhz()
    assert after != before
    for got, want in zip(after, runner.best()):
        assert abs(CANDS.index(got) - CANDS.index(want)) <= 1


def test_config_errors():
    with pytest.raises(ConfigError):
        OnlineConfig([1000])
    with pytest.raises(ConfigError):
        OnlineConfig(CANDS, eta=2.0)


def test_sim_drift_beats_stale_and_default():
    from gearshift.tuning.replay.drift import run_drift_experiment

    # 300 iterations after the drift: the online tuner's exploration (it detects the drift in 2
    # and recovers in 9) must repay itself against the stale plan, which on the simulated H100
    # with NCCL's clock-dependent collectives is only ~1 % off the oracle (160 were too few:
    # online 0.15 % above stale)
    r = run_drift_experiment(iterations=400, drift_at=100)
    e = r.energy_j
    assert e["online"] < e["stale"] < e["default"]
    assert e["oracle"] <= e["online"] * 1.001
    assert r.detected_at is not None and r.detected_at - r.drift_at <= 6
    assert r.recovery_iterations is not None and r.recovery_iterations <= 30
