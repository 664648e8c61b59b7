"""Probe layouts request a partition's clock a switch latency ahead of its boundaries, and
rounds count steps only once the first locks have landed (profile/online.py)."""

import numpy as np

from gearshift.devices.fake_gpu import StepSample
from gearshift.model import NO_OVERLAP
from gearshift.profile.online import Probe, Round, probe_layout, reference_offsets

REF = (1980, NO_OVERLAP)
OPT = (1080, NO_OVERLAP)


def _offsets():
    # three partitions of 10 kernels of 0.1 ms each: starts 0, 10, 20; the step 3 ms
    return reference_offsets([0, 10, 20], np.array([1e-3, 1e-3, 1e-3]), np.full(30, 1e-4), 30)


def test_the_option_is_requested_a_latency_ahead_and_the_reference_back_before_the_end():
    off = _offsets()
    lay = probe_layout(Probe(1, OPT), [0, 10, 20], REF, 3e-4, off, option_time_s=2e-3)
    # p = 1 starts at 1.0 ms: the last kernel starting >= 0.3 ms before is kernel 7 (0.7 ms);
    # at the option p's kernels take 0.2 ms: the first leaving <= 0.3 ms is kernel 19 (0.2 ms)
    assert lay.lead_in == 7 and lay.lead_out == 19
    assert lay.cuts == (0, 7, 10, 19, 20)
    assert lay.owner == (0, 0, 1, 1, 2)
    assert lay.clocks == (REF, OPT, OPT, REF, REF)
    # p = 0: its lead-in lies in the previous step's tail (the last partition)
    lay0 = probe_layout(Probe(0, OPT), [0, 10, 20], REF, 3e-4, off)
    assert lay0.lead_in == 27 and lay0.clocks[-1] == OPT and lay0.owner[-1] == 2
    # no latency, one partition or the reference probe: the plain layout
    assert probe_layout(Probe(1, OPT), [0, 10, 20], REF, 0.0, off).cuts == (0, 10, 20)
    assert probe_layout(Probe(), [0, 10, 20], REF, 3e-4, off).cuts == (0, 10, 20)
    assert probe_layout(Probe(0, OPT), [0], REF, 3e-4, off).cuts == (0,)


def _sample(t0, bounds, end, mj):
    return StepSample([t0 + b for b in bounds], [(t0, mj), (t0 + end, mj + 1)], t0 + end)


def test_a_round_counts_steps_only_after_the_latency_and_reports_the_landing_edges():
    off = _offsets()
    lay = probe_layout(Probe(1, OPT), [0, 10, 20], REF, 3e-4, off, option_time_s=2e-3)
    rnd = Round(Probe(1, OPT), 3, settle_s=3e-4, layout=lay, offsets_s=off, reference=REF)
    step = 4e-3
    # lead-in lands 0.05 ms early (in partition 0), the lead-out 0.02 ms late (in partition 2)
    bounds = [0.0, 0.65e-3, 1.0e-3, 2.82e-3, 3.0e-3]
    for k in range(4):
        rnd.add(_sample(k * step, bounds, step, 10 * k))
    # step 0 is the warm-up; it ends at 4 ms, so step 1 (starting then, before 4.3 ms: its
    # first locks may not have landed) is not counted either
    assert rnd.settled_steps == 2 and len(rnd.times) == 2
    np.testing.assert_allclose(rnd.times[0], [1.0e-3, 2.0e-3, 1.0e-3])
    edges = dict(rnd.edges())
    assert abs(edges[0] - 0.05e-3) < 1e-9 and abs(edges[2] - 0.12e-3) < 1e-9
