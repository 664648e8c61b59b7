"""Exact clock choice at a fixed iteration time, over a given set of allowed clocks per computation.

A mixed-integer program (HiGHS branch and bound): one binary per (computation, allowed clock),
one finish time per computation, the DAG's precedences with the chosen durations, finish <= T;
minimise the sum of reduced costs. With every clock allowed it is the exact discrete optimum
(used on small instances and in tests). On real sizes it is used as a neighbourhood search:
computations the relaxation puts exactly on a clock keep it, the others choose among the clocks
of the hull segment their relaxed duration lies on (and ``widen`` neighbours either side).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .pipeline_problem import PipelineProblem


def neighbourhood(prob: PipelineProblem, durations: np.ndarray, widen: int = 0,
                  hull: dict | None = None) -> list[np.ndarray]:
    """Allowed option indices per computation around a relaxed solution."""
    out = []
    for i, key in enumerate(prob.op_key):
        t = prob.options[key].time_s
        d = durations[i]
        lo = int(np.searchsorted(t, d * (1 + 1e-12), side="right") - 1)
        lo = max(lo, 0)
        if abs(t[lo] - d) <= 1e-9 * max(d, 1.0) and widen == 0:
            out.append(np.array([lo]))
            continue
        hi = lo + 1
        if hull is not None:
            # the slower end of the hull segment the relaxed duration lies on
            h = hull[key]
            above = h[t[h] > d * (1 + 1e-12)]
            hi = int(above[0]) if len(above) else lo
            below = h[t[h] <= d * (1 + 1e-12)]
            lo = int(below[-1]) if len(below) else lo
        lo, hi = max(lo - widen, 0), min(hi + widen, len(t) - 1)
        out.append(np.arange(lo, hi + 1))
    return out


def milp_plan(prob: PipelineProblem, deadline_s: float, allowed: list[np.ndarray] | None = None,
              time_limit_s: float = 10.0, rel_gap: float = 1e-6,
              start: np.ndarray | None = None) -> tuple[np.ndarray | None, float, bool]:
    """(option index per computation or None, dual bound on the energy, proven optimal).
    The objective is the real energy: sum of reduced costs + P*S*makespan, makespan <= T."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = prob.num_ops
    if allowed is None:
        allowed = [np.arange(len(prob.options[k].time_s)) for k in prob.op_key]
    times = [prob.options[k].time_s[a] for k, a in zip(prob.op_key, allowed)]
    costs = [prob.options[k].cost_j[a] for k, a in zip(prob.op_key, allowed)]
    free = [i for i in range(n) if len(allowed[i]) > 1]
    col_of = {}
    nb = 0
    for i in free:
        col_of[i] = n + nb
        nb += len(allowed[i])
    fixed_t = np.array([t[0] if len(t) == 1 else 0.0 for t in times])
    fixed_c = float(sum(c[0] for c in costs if len(c) == 1))
    rows, cols, vals, lo, hi = [], [], [], [], []
    r = 0
    for i in range(n):
        for p in (prob.preds[i] or [-1]):
            # x_i - x_p - dur_i >= 0
            rows.append(r)
            cols.append(i)
            vals.append(1.0)
            if p >= 0:
                rows.append(r)
                cols.append(p)
                vals.append(-1.0)
            if i in col_of:
                k = len(times[i])
                rows.extend([r] * k)
                cols.extend(range(col_of[i], col_of[i] + k))
                vals.extend((-times[i]).tolist())
            lo.append(fixed_t[i])
            hi.append(np.inf)
            r += 1
    mcol = n + nb           # the makespan: energy charges blocking up to it, not up to T
    for i in range(n):
        if not prob.succ[i]:
            rows.extend([r, r])
            cols.extend([mcol, i])
            vals.extend([1.0, -1.0])
            lo.append(0.0)
            hi.append(np.inf)
            r += 1
    for i in free:
        k = len(times[i])
        rows.extend([r] * k)
        cols.extend(range(col_of[i], col_of[i] + k))
        vals.extend([1.0] * k)
        lo.append(1.0)
        hi.append(1.0)
        r += 1
    a = sp.csr_matrix((vals, (rows, cols)), shape=(r, n + nb + 1))
    c = np.concatenate([np.zeros(n)] + [costs[i] for i in free] +
                       [[prob.blocking_power_w * prob.stages]])
    integrality = np.concatenate([np.zeros(n), np.ones(nb), [0]])
    bounds = Bounds(np.zeros(n + nb + 1),
                    np.concatenate([np.full(n, np.inf), np.ones(nb), [deadline_s]]))
    res = milp(c, constraints=LinearConstraint(a, lo, hi), integrality=integrality,
               bounds=bounds, options={"time_limit": time_limit_s, "mip_rel_gap": rel_gap,
                                       "disp": False})
    dual = getattr(res, "mip_dual_bound", None)
    dual = fixed_c + (dual if dual is not None else -np.inf)
    if res.x is None:
        return None, dual, False
    choice = np.empty(n, dtype=np.int64)
    for i in range(n):
        if i in col_of:
            y = res.x[col_of[i]:col_of[i] + len(times[i])]
            choice[i] = allowed[i][int(np.argmax(y))]
        else:
            choice[i] = allowed[i][0]
    return choice, dual, res.status == 0
