"""The online profiler's requests and arithmetic (profile/online.py), without a device: each
probe's step energy comes from a known additive model, so the differential attribution can be
checked exactly."""

import numpy as np
import pytest

from gearshift.model import NO_OVERLAP
from gearshift.profile.online import Measured, OptionSearch, Probe, Round

TIMES = np.array([1.0, 3.0, 0.5])            # reference partition times (s)
POWER = np.array([600.0, 300.0, 450.0])      # each partition's own power at the top clock (W)


def true_energy(p, f):
    """A GEMM-like partition 0 (time ~1/f, power ~f^2), a memory-bound partition 1 (time
    flat, power ~f), a mixed one."""
    x = f / 1980
    t = TIMES[p] * ([1 / x, 1.0, 0.5 + 0.5 / x][p])
    w = POWER[p] * ([x * x, x, x ** 1.5][p])
    return t, t * w


def run_search(search):
    steps = 0
    while (probe := search.next_probe()) is not None:
        choices = probe.choices(3, search.reference)
        te = [true_energy(p, c[0]) for p, c in enumerate(choices)]
        m = Measured(np.array([t for t, _ in te]), float(sum(e for _, e in te)), 1e-4, 10)
        if probe.partition is None:
            search.ref = m
        else:
            search.measured[(probe.partition, probe.option)] = m
        steps += 1
        assert steps < 200
    return steps


def test_differences_give_exact_totals_for_every_schedule():
    freqs = [1980, 1680, 1380, 1080]
    opts = [[(f, NO_OVERLAP) for f in freqs]] * 3
    s = OptionSearch(opts, (1980, NO_OVERLAP))
    rounds = run_search(s)
    assert rounds == 1 + 3 * 3 and s.options_measured == s.options_total == 12
    rng = np.random.default_rng(0)
    for _ in range(20):
        pick = rng.choice(freqs, 3)
        want = sum(true_energy(p, f)[1] for p, f in enumerate(pick))
        got = sum(s.partition_option(p, (int(f), NO_OVERLAP))[1] for p, f in enumerate(pick))
        assert got == pytest.approx(want, rel=1e-12)
    # each partition's own saving is seen (time share would give all three the same power)
    ratio = [s.partition_option(p, (1080, NO_OVERLAP))[1] - s.partition_option(
        p, (1980, NO_OVERLAP))[1] for p in range(3)]
    want = [true_energy(p, 1080)[1] - true_energy(p, 1980)[1] for p in range(3)]
    assert ratio == pytest.approx(want, rel=1e-9)


def test_many_options_are_requested_by_the_sampling_search():
    freqs = list(range(1980, 990, -45))           # 22 clocks: sampled, not exhaustive
    opts = [[(f, NO_OVERLAP) for f in freqs]] * 3
    s = OptionSearch(opts, (1980, NO_OVERLAP))
    run_search(s)
    per = [sum(1 for (p, _o) in s.measured if p == q) + 1 for q in range(3)]
    assert all(2 <= n <= int(0.15 * 22) + 1 for n in per), per
    assert s.options_measured == sum(per) < 0.2 * s.options_total
    prof = s.profile(_facts(freqs), "sig", "measured")
    assert len(prof.entries) == sum(per)          # unmeasured options are left out


def test_reference_round_target_tightens_with_the_smallest_partition():
    s = OptionSearch([[(1980, NO_OVERLAP)]] * 3, (1980, NO_OVERLAP))
    r = Round(Probe(), 3, warmup=0)
    r.times.append(TIMES.copy())
    r.reads[:] = [(0.0, 0), (0.01, 0), (0.011, 1000), (1.0, 1000), (1.001, 300000)]
    share = TIMES.min() / TIMES.sum()
    assert s.target_for(r) == pytest.approx(0.0025 * share / (1 - share))


def _facts(freqs):
    from gearshift.model import DeviceFacts

    return DeviceFacts(name="test GPU", supported_freqs_mhz=tuple(freqs))
