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
              start: np.ndarray | None = None,
              max_nodes: int | None = None,
              stats: dict | None = None) -> tuple[np.ndarray | None, float, bool]:
    """(option index per computation or None, dual bound on the energy, proven optimal).
    The objective is the real energy: sum of reduced costs + P*S*makespan, makespan <= T.
    ``start`` (option index per computation, each within ``allowed``, finishing by T) is handed
    to HiGHS as its first incumbent, so the answer is never worse than it. ``max_nodes`` bounds
    the branch and bound by nodes, so the answer does not depend on the machine's speed or load
    (``time_limit_s`` is then only a safety net); ``stats`` (if given) receives the work done,
    which is as deterministic: ``nodes``, ``lp_iterations`` (simplex iterations, all nodes),
    ``binaries`` and ``columns``."""
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
    a = sp.csr_matrix((vals, (rows, cols)), shape=(r, n + nb + 1)).tocsc()
    c = np.concatenate([np.zeros(n)] + [costs[i] for i in free] +
                       [[prob.blocking_power_w * prob.stages]])
    x0 = None
    if start is not None:
        x0 = np.zeros(n + nb + 1)
        dur = np.array([prob.options[k].time_s[j] for k, j in zip(prob.op_key, start)])
        ef = np.zeros(n)
        for i in range(n):
            ef[i] = max((ef[p] for p in prob.preds[i]), default=0.0) + dur[i]
        x0[:n] = ef
        for i in free:
            x0[col_of[i] + int(np.flatnonzero(allowed[i] == start[i])[0])] = 1.0
        x0[-1] = ef.max()
    x, dual, optimal, work = _solve(a, c, np.array(lo), np.array(hi), n, nb, deadline_s,
                                     time_limit_s, rel_gap, x0, max_nodes)
    if stats is not None:
        stats.update(work, binaries=nb, columns=n + nb + 1)
    dual = fixed_c + dual
    if x is None:
        return None, dual, False
    choice = np.empty(n, dtype=np.int64)
    for i in range(n):
        if i in col_of:
            y = x[col_of[i]:col_of[i] + len(times[i])]
            choice[i] = allowed[i][int(np.argmax(y))]
        else:
            choice[i] = allowed[i][0]
    return choice, dual, optimal


def _solve(a, c, row_lo, row_hi, n, nb, deadline_s, time_limit_s, rel_gap, x0=None,
           max_nodes=None):
    # highspy rather than scipy.optimize.milp: scipy's build of HiGHS prints MIP debug lines
    # on stdout, which would corrupt the CLI's output contract
    import highspy

    from ._highs import new_highs

    h = new_highs()
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(rel_gap))
    if max_nodes is not None:
        h.setOptionValue("mip_max_nodes", int(max_nodes))
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    nv = n + nb + 1
    lp.num_col_, lp.num_row_ = nv, a.shape[0]
    lp.col_cost_ = c
    lp.col_lower_ = np.zeros(nv)
    lp.col_upper_ = np.concatenate([np.full(n, inf), np.ones(nb), [deadline_s]])
    lp.row_lower_ = row_lo
    lp.row_upper_ = np.where(np.isinf(row_hi), inf, row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    lp.integrality_ = [highspy.HighsVarType.kContinuous] * n + \
        [highspy.HighsVarType.kInteger] * nb + [highspy.HighsVarType.kContinuous]
    h.passModel(lp)
    if x0 is not None:
        sol = highspy.HighsSolution()
        sol.col_value = x0
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    info = h.getInfo()
    status = h.getModelStatus()
    dual = info.mip_dual_bound if np.isfinite(info.mip_dual_bound) else -np.inf
    work = {"nodes": int(info.mip_node_count), "lp_iterations": int(info.simplex_iteration_count)}
    if info.primal_solution_status != 2:          # no feasible solution found
        return None, dual, False, work
    return (np.asarray(h.getSolution().col_value), dual,
            status == highspy.HighsModelStatus.kOptimal, work)
