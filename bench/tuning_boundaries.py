"""Iteration detection accuracy on synthetic noisy traces (power period and kernel repeats).

    .venv/bin/python bench/tuning_boundaries.py
"""

from __future__ import annotations

import time

import numpy as np

from gearshift.errors import TraceError
from gearshift.tuning.boundaries import kernel_period, power_period


def power_trace(period_s, dt, n_iter, noise_w, jitter, rng):
    # iterations of slightly varying length, three power phases each, Gaussian sensor noise
    out = []
    for _ in range(n_iter):
        p = period_s * (1 + rng.normal(0, jitter))
        t = np.arange(0, p, dt)
        ph = t / p
        out.append(np.where(ph < 0.35, 420.0, np.where(ph < 0.8, 470.0, 250.0)))
    x = np.concatenate(out)
    return x + rng.normal(0, noise_w, x.size)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    print("power-trace period detection (10 ms samples, 15 iterations, 20 trials each)")
    print(f"{'period s':>9} {'noise W':>8} {'jitter':>7} {'median err':>11} {'p95 err':>8} "
          f"{'ms/trace':>9} {'rejected':>8}")
    for period_s in (0.12, 0.45, 1.7):
        for noise_w, jitter in ((10, 0.0), (50, 0.02), (100, 0.05)):
            errs, fails, t0 = [], 0, time.perf_counter()
            for _ in range(20):
                x = power_trace(period_s, 0.01, 15, noise_w, jitter, rng)
                try:
                    errs.append(abs(power_period(x, 0.01, 0.05).period_s / period_s - 1))
                except TraceError:
                    fails += 1
            ms = (time.perf_counter() - t0) / 20 * 1e3
            print(f"{period_s:9.2f} {noise_w:8.0f} {jitter:7.0%} {np.median(errs):11.2%} "
                  f"{np.percentile(errs, 95):8.2%} {ms:9.2f} {fails:>8d}")
    print("\nkernel-signature repeats (warm-up prefix, 1 odd kernel per iteration)")
    print(f"{'kernels/iter':>12} {'iterations':>10} {'found':>6} {'ms':>8}")
    for k in (50, 600, 4000):
        it = [f"k{i % (k // 3)}_{i % 7}" for i in range(k)]
        seq = ["warmup"] * 11
        for _ in range(5):
            body = list(it)
            body[rng.integers(k)] = "odd"
            seq += body
        t0 = time.perf_counter()
        kp = kernel_period(seq, min_match=0.9)
        ms = (time.perf_counter() - t0) * 1e3
        print(f"{k:12d} {5:10d} {kp.period:6d} {ms:8.2f}")
