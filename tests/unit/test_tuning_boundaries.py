import numpy as np
import pytest

from gearshift.errors import DeviceError, TraceError
from gearshift.tuning.boundaries import (IterationCounter, energy_delta_j, kernel_period,
                                        power_period, unwrap_energy)


def iteration(n_layers=6):
    fwd = [f"fwd_gemm_{i % 3}" for i in range(n_layers)] + ["softmax", "loss"]
    bwd = [f"bwd_gemm_{i % 3}" for i in range(2 * n_layers)] + ["nccl_allreduce"]
    return fwd + bwd + ["adam_step", "zero_grad"]


def test_kernel_period_with_warmup_and_noise():
    it = iteration()
    rng = np.random.default_rng(0)
    seq = ["cudnn_autotune"] * 7 + ["init_a", "init_b"]
    for _ in range(6):
        body = list(it)
        body[rng.integers(len(body))] = "data_dependent_kernel"   # one odd kernel per iteration
        seq += body
    kp = kernel_period(seq, min_match=0.9)
    assert kp.period == len(it)
    assert kp.offset == 9                     # warm-up kernels skipped
    assert kp.repeats >= 5
    assert kp.boundaries(len(seq))[1] - kp.boundaries(len(seq))[0] == len(it)


def test_kernel_period_is_the_shortest_not_a_multiple():
    seq = iteration() * 8
    assert kernel_period(seq).period == len(iteration())


def test_kernel_period_rejects_aperiodic_and_short():
    rng = np.random.default_rng(1)
    with pytest.raises(TraceError):
        kernel_period([f"k{rng.integers(50)}" for _ in range(300)])
    with pytest.raises(TraceError, match="too few"):
        kernel_period(["a", "b"])


def test_iteration_counter_counts_and_flags_divergence():
    it = iteration()
    c = IterationCounter(it)
    starts = [c.push(n) for n in it * 3]
    assert sum(starts) == 3 and c.iterations == 3 and not c.diverged
    for n in ["other"] * len(it):
        c.push(n)
    assert c.diverged


def synthetic_power(period_s, dt, seconds, noise_w, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, dt)
    phase = (t % period_s) / period_s
    # compute-heavy forward/backward, then a low-power communication/optimizer tail
    base = np.where(phase < 0.35, 420.0, np.where(phase < 0.8, 470.0, 250.0))
    return base + rng.normal(0, noise_w, t.size)


@pytest.mark.parametrize("period_s,noise_w", [(0.237, 20.0), (0.5, 60.0), (1.31, 40.0)])
def test_power_period_recovers_iteration_time(period_s, noise_w):
    p = power_period(synthetic_power(period_s, 0.01, 12 * period_s, noise_w), 0.01,
                     min_period_s=0.05)
    assert p.period_s == pytest.approx(period_s, rel=0.03)
    assert p.confidence > 0.3


def test_power_period_rejects_noise_and_constant():
    rng = np.random.default_rng(3)
    with pytest.raises(TraceError):
        power_period(300 + rng.normal(0, 20, 2000), 0.01)
    with pytest.raises(TraceError, match="constant"):
        power_period(np.full(100, 300.0), 0.01)


def test_energy_counter_wrap_backwards_and_glitch():
    assert energy_delta_j(10.0, 15.0) == 5.0
    wrap = 2 ** 32 * 1e-6                      # 32-bit microjoule register
    assert energy_delta_j(wrap - 1.0, 2.0, wrap_j=wrap) == pytest.approx(3.0)
    assert energy_delta_j(100.0, 99.9995, glitch_j=0.001) == 0.0
    with pytest.raises(DeviceError, match="backwards from 100.000 J to 40.000 J"):
        energy_delta_j(100.0, 40.0)
    cum = unwrap_energy([wrap - 2, wrap - 1, 0.5, 1.5], wrap_j=wrap)
    assert cum[-1] == pytest.approx(3.5)
    with pytest.raises(DeviceError, match="reading 2"):
        unwrap_energy([1.0, 2.0, 0.5, 3.0])


def test_cli_iterations(tmp_path, capsys):
    from gearshift.cli import main

    (tmp_path / "k.txt").write_text("\n".join(["warm"] * 3 + iteration() * 4))
    t = np.arange(0, 6.0, 0.01)
    x = synthetic_power(0.5, 0.01, 6.0, 10.0)
    (tmp_path / "p.csv").write_text("time_s,power_w\n" + "\n".join(
        f"{a},{b}" for a, b in zip(t, x)))
    main(["tune", "iterations", "--kernels", str(tmp_path / "k.txt"), "--power",
          str(tmp_path / "p.csv")])
    out = capsys.readouterr().out
    assert f"iteration = {len(iteration())} kernels, first full one at index 3" in out
    assert "iteration period 499." in out or "iteration period 500." in out
    (tmp_path / "bad.csv").write_text("t,p\n1,2\n")
    with pytest.raises(SystemExit) as ex:
        main(["tune", "iterations", "--power", str(tmp_path / "bad.csv")])
    assert ex.value.code == 2 and "missing column(s) time_s, power_w" in capsys.readouterr().err
