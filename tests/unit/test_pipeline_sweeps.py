"""The native DAG sweeps (csrc/pipeline) against the planner's reference loops, bit for bit.

The reference loops below are the Python implementations the planner ran before the sweeps
moved to C++ (kept here only as the oracle). Every comparison is exact (==, not approx): the
native code promises the same floating-point operations in the same order, so a frontier
planned natively is the frontier the reference would have planned.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.pipeline import StageProfile
from gearshift.pipeline.executor import graph_for
from gearshift.search.pipeline_lp import crash, fill_slack, relaxation, round_diffuse, round_hull
from gearshift.search.pipeline_problem import PipelineProblem


# ----------------------------------------------------------------------------- the oracle
def _durations(prob, choice):
    times = {k: o.time_s.tolist() for k, o in prob.options.items()}
    return times, [times[prob.op_key[i]][choice[i]] for i in range(prob.num_ops)]


def _earliest_finish(dur, preds):
    ef = [0.0] * len(dur)
    for i in range(len(dur)):
        t = 0.0
        for q in preds[i]:
            if ef[q] > t:
                t = ef[q]
        ef[i] = t + dur[i]
    return ef


def _latest_start(dur, succ, limit):
    ls = [0.0] * len(dur)
    for i in range(len(dur) - 1, -1, -1):
        lf = limit
        for q in succ[i]:
            if ls[q] < lf:
                lf = ls[q]
        ls[i] = lf - dur[i]
    return ls


def ref_fill_slack(prob, choice, deadline_s, max_passes=8):
    choice = choice.copy()
    n = prob.num_ops
    times, dur = _durations(prob, choice)
    keys, preds, succ = prob.op_key, prob.preds, prob.succ
    limit = deadline_s * (1 + 1e-12)
    for p in range(max_passes):
        changed = False
        if p % 2 == 0:
            ef = _earliest_finish(dur, preds)
            start = [0.0] * n
            for i in range(n - 1, -1, -1):
                lf = limit
                for q in succ[i]:
                    if start[q] < lf:
                        lf = start[q]
                es = ef[i] - dur[i]
                j = bisect_right(times[keys[i]], lf - es) - 1
                if j > choice[i]:
                    choice[i] = j
                    dur[i] = times[keys[i]][j]
                    changed = True
                start[i] = lf - dur[i]
        else:
            ls = _latest_start(dur, succ, limit)
            end = [0.0] * n
            for i in range(n):
                es = 0.0
                for q in preds[i]:
                    if end[q] > es:
                        es = end[q]
                lf = ls[i] + dur[i]
                j = bisect_right(times[keys[i]], lf - es) - 1
                if j > choice[i]:
                    choice[i] = j
                    dur[i] = times[keys[i]][j]
                    changed = True
                end[i] = es + dur[i]
        if not changed and p >= 1:
            break
    return choice


def _speedups(prob):
    out = {}
    for key, o in prob.options.items():
        t, c = o.time_s.tolist(), o.cost_j.tolist()
        rate, to = [float("inf")], [0]
        for cur in range(1, len(t)):
            best, best_j = float("inf"), 0
            for j in range(cur):
                r = (c[j] - c[cur]) / (t[cur] - t[j])
                if r < best:
                    best, best_j = r, j
            rate.append(best)
            to.append(best_j)
        out[key] = (rate, to)
    return out


def ref_crash(prob, choice, deadline_s, max_steps=None):
    choice = choice.copy()
    n = prob.num_ops
    times, dur = _durations(prob, choice)
    speed = _speedups(prob)
    ch = choice.tolist()
    keys, preds, succ = prob.op_key, prob.preds, prob.succ
    limit = deadline_s * (1 + 1e-12)
    steps = max_steps if max_steps is not None else 4 * n
    for _ in range(steps):
        ef = _earliest_finish(dur, preds)
        mk = max(ef)
        if mk <= limit:
            return choice
        ls = [0.0] * n
        best, best_rate, best_to = -1, float("inf"), 0
        tol = 1e-9 * mk
        for i in range(n - 1, -1, -1):
            lf = mk
            for q in succ[i]:
                if ls[q] < lf:
                    lf = ls[q]
            ls[i] = lf - dur[i]
            c = ch[i]
            if c > 0 and lf - ef[i] <= tol:
                rate, to = speed[keys[i]]
                if rate[c] < best_rate:
                    best, best_rate, best_to = i, rate[c], to[c]
        if best < 0:
            return None
        choice[best] = ch[best] = best_to
        dur[best] = times[keys[best]][best_to]
    return None


def ref_round_diffuse(prob, durations, deadline_s):
    hulls = relaxation(prob).hull
    n = prob.num_ops
    keys, preds, succ = prob.op_key, prob.preds, prob.succ
    d = durations.tolist()
    limit = deadline_s * (1 + 1e-12)
    lf = [0.0] * n
    for i in range(n - 1, -1, -1):
        t = limit
        for q in succ[i]:
            v = lf[q] - d[q]
            if v < t:
                t = v
        lf[i] = t
    vt = {k: prob.options[k].time_s[h].tolist() for k, h in hulls.items()}
    vi = {k: h.tolist() for k, h in hulls.items()}
    choice = np.empty(n, dtype=np.int64)
    end = [0.0] * n
    for i in range(n):
        s = 0.0
        for q in preds[i]:
            if end[q] > s:
                s = end[q]
        k = keys[i]
        j = max(bisect_right(vt[k], lf[i] - s) - 1, 0)
        choice[i] = vi[k][j]
        end[i] = s + vt[k][j]
    return choice


def ref_schedule(g, dur, p2p_s):
    start = [0.0] * g.num_ops
    end = [0.0] * g.num_ops
    for i in range(g.num_ops):
        a = g.prev[i]
        t = end[a] if a >= 0 else 0.0
        b = g.cross[i]
        if b >= 0:
            tb = end[b] + p2p_s if g.cross_is_p2p[i] else end[b]
            if tb > t:
                t = tb
        start[i] = t
        end[i] = t + dur[i]
    return start, end


# ----------------------------------------------------------------------------- problems
def _profile(stages, seed, freqs=12):
    """Noisy profiles (local time inversions like the measured A40 ones, many clocks)."""
    rng = np.random.default_rng(seed)
    f = np.linspace(900, 1740, freqs).astype(int)
    base = rng.uniform(0.5, 2.0, size=(stages, 2, 1))
    mem = rng.uniform(0.1, 0.6, size=(stages, 2, 1))
    t = base * (mem + (1 - mem) * 1740 / f) * rng.uniform(0.97, 1.03, size=(stages, 2, freqs))
    p = 80 + 220 * (f / 1740) ** 2.4 * rng.uniform(0.95, 1.05, size=(stages, 2, freqs))
    return StageProfile(f, t, t * p, f"synthetic seed {seed}")


CASES = [("1f1b", 4, 8, None), ("gpipe", 3, 6, None), ("interleaved-1f1b", 4, 8, 2),
         ("zb-interleaved", 4, 8, 2), ("zbv", 4, 8, None), ("dualpipev", 4, 8, None)]


def _problem(kind, stages, n, v, seed):
    g = graph_for(kind, stages, n, v)
    return PipelineProblem(_profile(g.stages, seed), kind, stages, n, 300.0, v)


@pytest.mark.parametrize("kind,stages,n,v", CASES)
def test_sweeps_match_the_reference_loops_exactly(kind, stages, n, v):
    prob = _problem(kind, stages, n, v, seed=stages * 7 + n)
    rng = np.random.default_rng(1)
    sizes = np.array([len(prob.options[k].time_s) for k in prob.op_key])
    fast = prob.makespan(prob.op_times(prob.fastest_choice()))
    slow = prob.makespan(prob.op_times(sizes - 1))
    crashed = 0
    for trial in range(12):
        deadline = fast + (slow - fast) * rng.uniform(-0.05, 1.0)
        choice = rng.integers(0, sizes)
        got = crash(prob, choice, deadline)
        want = ref_crash(prob, choice, deadline)
        assert (got is None) == (want is None)
        if got is not None:
            crashed += 1
            np.testing.assert_array_equal(got, want)
            assert prob.makespan(prob.op_times(got)) <= deadline * (1 + 1e-12)
        few = crash(prob, choice, deadline, max_steps=3)
        ref_few = ref_crash(prob, choice, deadline, max_steps=3)
        assert (few is None) == (ref_few is None)
        base = got if got is not None else prob.fastest_choice()
        t = max(deadline, fast)
        filled = fill_slack(prob, base, t)
        np.testing.assert_array_equal(filled, ref_fill_slack(prob, base, t))
        assert np.all(filled >= base)                      # only ever slows down
        assert prob.makespan(prob.op_times(filled)) <= t * (1 + 1e-12)
        np.testing.assert_array_equal(fill_slack(prob, base, t, 1),
                                      ref_fill_slack(prob, base, t, 1))
        d = relaxation(prob).solve(t)[0]
        np.testing.assert_array_equal(round_diffuse(prob, d, t), ref_round_diffuse(prob, d, t))
        hull = round_hull(prob, d, 0.5)
        got = crash(prob, hull, t)
        want = ref_crash(prob, hull, t)
        assert (got is None) == (want is None)
        if got is not None:
            np.testing.assert_array_equal(got, want)
    assert crashed >= 3                # the comparison saw successful repairs, not only None


@pytest.mark.parametrize("kind,stages,n,v", CASES[:3])
def test_schedule_matches_the_reference_loop_exactly(kind, stages, n, v):
    g = graph_for(kind, stages, n, v)
    rng = np.random.default_rng(3)
    t = rng.uniform(0.1, 2.0, size=g.shape)
    dur = t.reshape(-1)[g.op_flat].tolist()
    for p2p in (0.0, 0.125):
        start, end = g.schedule(t, p2p)
        rs, re = ref_schedule(g, dur, p2p)
        np.testing.assert_array_equal(start.reshape(-1)[g.op_flat], rs)
        np.testing.assert_array_equal(end.reshape(-1)[g.op_flat], re)
        batch = np.stack([t, 2 * t])
        np.testing.assert_array_equal(g.makespans(batch, p2p),
                                      [max(re), max(ref_schedule(g, [2 * x for x in dur], p2p)[1])])


def test_sweeps_refuse_malformed_input():
    from gearshift._native import native

    C = native()
    with pytest.raises(ConfigError, match="topological"):
        C.PipelineDag(np.array([1, -1]), np.array([-1, -1]), np.array([False, False]))
    with pytest.raises(ConfigError, match="differ in length"):
        C.PipelineDag(np.array([-1, 0]), np.array([-1]), np.array([False, False]))
    dag = C.PipelineDag(np.array([-1, 0]), np.array([-1, -1]), np.array([False, False]))
    with pytest.raises(ConfigError, match="one per computation"):
        dag.schedule(np.array([1.0]))
    one = dict(option_start=np.array([0, 2]), option_time_s=np.array([1.0, 2.0]),
               option_cost_j=np.array([5.0, 3.0]), hull_start=np.array([0, 2]),
               hull_option=np.array([0, 1]))
    sw = C.PipelineSweeps(dag, np.array([0, 0]), **one)
    with pytest.raises(ConfigError, match="missing table"):
        C.PipelineSweeps(dag, np.array([0, 1]), **one)
    with pytest.raises(ConfigError, match="not an option"):
        sw.fill_slack(np.array([0, 2]), 10.0)
    # two computations in a chain, 1 s or 2 s each: by 3 s one of them may take 2 s
    np.testing.assert_array_equal(sw.fill_slack(np.array([0, 0]), 3.0), [0, 1])
    np.testing.assert_array_equal(sw.crash(np.array([1, 1]), 3.0), [1, 0])
    assert sw.crash(np.array([1, 1]), 1.5) is None
