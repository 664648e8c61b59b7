"""The relaxation at a fixed iteration time T, and its rounding to clocks.

Relaxation: each computation may take any duration on the lower convex hull of its (t, c)
clocks (c = e - P*t, see pipeline_problem), the dependency DAG must finish by T. That is a
linear program (finish time x_i per computation, plus one bounded variable per hull segment
whose cost is the segment's slope). Its dual is a min-cost flow on the DAG, which the native
network simplex solves exactly (csrc/pipeline/tradeoff.cpp), warm from the basis saved at the
nearest solved T; HiGHS on the LP itself is the reference it is tested against. Its optimum is a
lower bound on the energy of every real plan whose iteration time is <= T, because every real
plan is a feasible point of the relaxation. The LP is degenerate: other solvers land on other,
equally optimal relaxed durations, and so on other roundings.

Rounding: each computation gets the cheapest clock no slower than its relaxed duration, so the
rounded plan still finishes by T. Slack filling then hands the time that rounding freed back to
computations that can use it: alternate passes (latest-start backwards, earliest-start forwards)
lengthen each computation to the cheapest clock that fits its window, until a pass changes
nothing. Every step keeps the plan feasible, so the result is a real plan with time <= T.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import GearshiftError
from .pipeline_problem import PipelineProblem, lower_hull

_EPS = 1e-12


# "network": the native network simplex over the relaxation's dual (csrc/pipeline/tradeoff.cpp),
# warm from the basis of the nearest solved T; "highs": HiGHS on the LP below (the reference the
# tests hold the network simplex to); scipy's linprog where neither is there
LP_SOLVER = "network"


class _Relaxation:
    """The relaxation of one problem; each T only changes the makespan's bound."""

    def __init__(self, prob: PipelineProblem, solver: str | None = None):
        self.prob = prob
        self.solver = solver or LP_SOLVER
        hull = {key: lower_hull(o.time_s, o.cost_j) for key, o in prob.options.items()}
        self.hull = hull
        # z variables measure time taken *off* the slowest useful (cheapest) vertex
        slow = {key: (o.time_s[hull[key][-1]], o.cost_j[hull[key][-1]])
                for key, o in prob.options.items()}
        self.tslow = np.array([slow[k][0] for k in prob.op_key])
        self.cslow = np.array([slow[k][1] for k in prob.op_key])
        self.n = prob.num_ops
        self._lp = None

    def _build_lp(self):
        """The LP's matrix (HiGHS / scipy paths only): x finish times, z segments, M."""
        prob, hull, n = self.prob, self.hull, self.n
        seg_op, seg_len, seg_slope = [], [], []
        for i, key in enumerate(prob.op_key):
            o, h = prob.options[key], hull[key]
            dt = np.diff(o.time_s[h])
            seg_op.extend([i] * len(dt))
            seg_len.extend(dt.tolist())
            seg_slope.extend((np.diff(o.cost_j[h]) / dt).tolist())
        self.seg_op = np.array(seg_op, dtype=np.int64)
        m = len(self.seg_op)
        # one row per (computation, predecessor), or one per computation without predecessors:
        #   -x_i - sum_segments(i) z + x_pred <= -tslow_i
        row_op, row_pred = [], []
        for i in range(n):
            preds = prob.preds[i] or [-1]
            for p in preds:
                row_op.append(i)
                row_pred.append(p)
        row_op = np.array(row_op)
        row_pred = np.array(row_pred)
        r = len(row_op)
        rows = [np.arange(r)]
        cols = [row_op]
        vals = [-np.ones(r)]
        has = row_pred >= 0
        rows.append(np.flatnonzero(has))
        cols.append(row_pred[has])
        vals.append(np.ones(int(has.sum())))
        # segment columns of op i appear in every row of op i
        seg_start = np.searchsorted(self.seg_op, np.arange(n))
        seg_end = np.searchsorted(self.seg_op, np.arange(n), side="right")
        counts = (seg_end - seg_start)[row_op]
        rr = np.repeat(np.arange(r), counts)
        cc = np.concatenate([np.arange(seg_start[i], seg_end[i]) for i in row_op]) + n \
            if m else np.zeros(0, dtype=np.int64)
        rows.append(rr)
        cols.append(cc)
        vals.append(-np.ones(len(rr)))
        # the makespan M (last column) bounds every computation without a successor:
        #   x_i - M <= 0; real energy is sum c + P*S*M, so finishing early counts
        sinks = np.array([i for i in range(n) if not prob.succ[i]])
        rows += [r + np.arange(len(sinks)), r + np.arange(len(sinks))]
        cols += [sinks, np.full(len(sinks), n + m)]
        vals += [np.ones(len(sinks)), -np.ones(len(sinks))]
        self.A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(r + len(sinks), n + m + 1))
        self.b = np.concatenate([-self.tslow[row_op], np.zeros(len(sinks))])
        self.c = np.concatenate([np.zeros(n), -np.array(seg_slope),
                                 [prob.blocking_power_w * prob.stages]])
        self.seg_len = np.array(seg_len)
        self.m = m
        self._start_basis = (row_op, np.array(row_pred), sinks, prob)
        self._lp = True

    def solve(self, deadline_s: float) -> tuple[np.ndarray, float]:
        """Relaxed durations, and the relaxed optimum of the energy (sum c_i + P*S*makespan)
        over plans with iteration time <= T: a lower bound on every real plan's."""
        if self.solver == "network":
            return self._solve_network(deadline_s)
        if self._lp is None:
            self._build_lp()
        x, fun = self._solve_highspy(deadline_s) if _highspy() else self._solve_scipy(deadline_s)
        d = self.tslow.copy()
        np.subtract.at(d, self.seg_op, x[self.n:self.n + self.m])
        return d, float(self.cslow.sum() + fun)

    def _solve_network(self, deadline_s):
        lp = getattr(self, "_network", None)
        if lp is None:
            from .._native import native

            prob = self.prob
            lp = self._network = native().PipelineRelaxation(
                sweeps(prob), prob.blocking_power_w * prob.stages)
        out = lp.solve(float(deadline_s))
        if out is None:
            raise self._fail(deadline_s, "no plan finishes by then")
        return out[0], float(out[1])

    def _fail(self, deadline_s, why):
        return GearshiftError(f"the relaxation at T={deadline_s:.6g} s failed: {why}",
                              "choose an iteration time >= the all-fastest plan's time")

    def _solve_scipy(self, deadline_s):
        from scipy.optimize import linprog

        lo = np.zeros(self.n + self.m + 1)
        hi = np.concatenate([np.full(self.n, np.inf), self.seg_len, [deadline_s]])
        res = linprog(self.c, A_ub=self.A, b_ub=self.b, bounds=np.column_stack([lo, hi]),
                      method="highs")
        if res.status != 0:
            raise self._fail(deadline_s, res.message)
        return res.x, res.fun

    def _set_start_basis(self, h, highspy):
        # a cold dual simplex needs about one pivot per row to bring the finish times into the
        # basis; this basis (finish times and makespan basic, each held by its tight row) is
        # optimal at a loose T, so the first solve is nearly free
        row_op, row_pred, sinks, prob = self._start_basis
        tight, sink_row, _ = _start_basis_rows(row_op, row_pred, sinks, self.tslow, self.n)
        nrows = len(row_op) + len(sinks)
        st = highspy.HighsBasisStatus
        rows = [st.kBasic] * nrows
        for r in tight.tolist():
            rows[r] = st.kUpper
        rows[len(row_op) + sink_row] = st.kUpper
        basis = highspy.HighsBasis()
        basis.col_status = [st.kBasic] * self.n + [st.kLower] * self.m + [st.kBasic]
        basis.row_status = rows
        basis.valid = True
        h.setBasis(basis)

    def _solve_highspy(self, deadline_s):
        # one HiGHS instance per problem: a new T only moves the makespan's bound, so the dual simplex
        # restarts from the previous basis (several times faster than a cold solve)
        import highspy

        from ._highs import new_highs

        h = getattr(self, "_highs", None)
        if h is None:
            h = new_highs()
            lp = highspy.HighsLp()
            a = self.A.tocsc()
            nv = self.n + self.m + 1
            lp.num_col_, lp.num_row_ = nv, a.shape[0]
            lp.col_cost_ = self.c
            lp.col_lower_ = np.zeros(nv)
            lp.col_upper_ = np.concatenate([np.full(self.n, highspy.kHighsInf), self.seg_len,
                                            [deadline_s]])
            lp.row_lower_ = np.full(a.shape[0], -highspy.kHighsInf)
            lp.row_upper_ = self.b
            lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            lp.a_matrix_.start_ = a.indptr
            lp.a_matrix_.index_ = a.indices
            lp.a_matrix_.value_ = a.data
            h.passModel(lp)
            self._set_start_basis(h, highspy)
            self._highs = h
        else:
            h.changeColBounds(self.n + self.m, 0.0, deadline_s)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise self._fail(deadline_s, h.modelStatusToString(h.getModelStatus()))
        return np.asarray(h.getSolution().col_value), h.getInfo().objective_function_value


def _start_basis_rows(row_op, row_pred, sinks, tslow, n):
    """With every z at 0 (slowest useful clocks), the rows that hold each finish time and the
    makespan: each computation's latest-finishing predecessor (or its source row)."""
    finish = np.zeros(n)
    tight = np.full(n, -1)
    best = np.full(n, -np.inf)
    # rows are grouped by computation in topological order
    for r, (i, p) in enumerate(zip(row_op.tolist(), row_pred.tolist())):
        v = finish[p] if p >= 0 else 0.0
        if v > best[i]:
            best[i], tight[i] = v, r
            finish[i] = v + tslow[i]
    sink = int(sinks[np.argmax(finish[sinks])])
    return tight, int(np.flatnonzero(sinks == sink)[0]), finish


def _highspy() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


def relaxation(prob: PipelineProblem) -> _Relaxation:
    cached = getattr(prob, "_relaxation", None)
    if cached is None:
        cached = _Relaxation(prob)
        prob._relaxation = cached
    return cached


def round_down(prob: PipelineProblem, durations: np.ndarray) -> np.ndarray:
    """Per computation, the cheapest clock no slower than ``durations`` (option indices)."""
    return sweeps(prob).round_down(np.asarray(durations, dtype=np.float64))


def sweeps(prob: PipelineProblem):
    """The native sweeps over this problem's DAG and option tables (csrc/pipeline), built once."""
    cached = getattr(prob, "_sweeps", None)
    if cached is None:
        from .._native import native

        hull = relaxation(prob).hull
        hulls = [hull[key] for key in prob.options]
        cached = native().PipelineSweeps(
            prob.graph.dag, prob.op_table, prob.option_start, prob.option_time_s,
            prob.option_cost_j, np.concatenate([[0], np.cumsum([len(h) for h in hulls])]),
            np.concatenate(hulls))
        prob._sweeps = cached
    return cached


def fill_slack(prob: PipelineProblem, choice: np.ndarray, deadline_s: float,
               max_passes: int = 8) -> np.ndarray:
    """Lengthen computations into the slack a plan leaves below ``deadline_s`` (stays feasible):
    alternate passes (latest starts backwards, earliest finishes forwards) move each computation
    to the slowest clock that fits its window, until a pass changes nothing."""
    return sweeps(prob).fill_slack(choice, deadline_s, max_passes)


def round_hull(prob: PipelineProblem, durations: np.ndarray, up_from: float) -> np.ndarray:
    """Round each relaxed duration to a vertex of its hull segment: the slower vertex when the
    duration lies at least ``up_from`` of the way to it, else the faster one (``up_from`` > 1:
    always the faster). Clocks between hull vertices cost more than the hull, so mixing
    vertices across microbatches (as the relaxation does) beats rounding each one alone.
    May overrun T; ``crash`` repairs that."""
    hulls = relaxation(prob).hull
    out = np.empty(prob.num_ops, dtype=np.int64)
    for key, o in prob.options.items():
        idx = prob.ops_of[key]
        h = hulls[key]
        th = o.time_s[h]
        d = durations[idx]
        lo = np.maximum(np.searchsorted(th, d * (1 + _EPS), side="right") - 1, 0)
        hi = np.minimum(lo + 1, len(h) - 1)
        span = th[hi] - th[lo]
        frac = np.where(span > 0, (d - th[lo]) / np.where(span > 0, span, 1), 0.0)
        out[idx] = np.where(frac >= up_from, h[hi], h[lo])
    return out


def crash(prob: PipelineProblem, choice: np.ndarray, deadline_s: float,
          max_steps: int | None = None) -> np.ndarray | None:
    """Speed computations up until the plan finishes by T: each step moves the critical
    computation with the cheapest cost per second saved to its next faster clock. None when
    it cannot get there (already all-fastest on a critical path)."""
    return sweeps(prob).crash(choice, deadline_s, -1 if max_steps is None else max_steps)


def round_diffuse(prob: PipelineProblem, durations: np.ndarray, deadline_s: float) -> np.ndarray:
    """Error-diffusion rounding to hull vertices, feasible by construction.

    In topological order, each computation may finish as late as the relaxed plan's latest
    finish allows; time a computation saves by rounding to a faster vertex lets later ones on
    its paths round to a slower one, so the mix of vertices follows the relaxed durations.
    """
    return sweeps(prob).round_diffuse(durations, deadline_s)
