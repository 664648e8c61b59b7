"""Polish one pipeline plan at a fixed iteration time T, and a tighter bound there.

Feasible clocks: a clock slower than its computation's total float at T (the time it may take
while every other computation runs at its fastest clock and everything still ends by T) is in no
plan of time <= T. The *hull LP* lets each computation take a convex mix of its feasible clocks
(the lower convex hull of their (time, reduced cost) points) and asks the DAG to end by T; its
optimum is a lower bound on the energy of every real plan of time <= T, at least as tight as
pipeline_lp's relaxation (which also mixes in the clocks no plan can use).

The polish, for one T only (the selected point), within a budget of nominal CPU seconds that is
spent by counting work (simplex iterations, pairs timed; ``Work``), not by reading a clock, so
the polished plan is the same on every run whatever the machine's load:
1. dive: solve the hull LP, then one computation at a time try the hull vertex just faster and the
   one just slower than its relaxed duration, re-solve the LP for each, keep the cheaper; the LP
   stays feasible, so the plan ends by T by construction. Slack filling then lets computations
   use the off-hull clocks that fit the time the rounding left.
2. exchange: from the dive's plan and from the sweep's best, move time between computations:
   slow one down where it overruns its float, speed up one on the paths that overrun breaks,
   every pair re-timed exactly on the DAG; apply the best, fill the slack, repeat.
3. windows: a large-neighbourhood search. For each window of the best plan's timeline (a
   fraction of T, half overlapping the next), the exact MILP (pipeline_milp) over every feasible
   clock of the computations that run in it, all others fixed, warm-started from the plan and
   bounded by nodes; then the exchange again. Sweeps repeat while one gains.
4. band: with the work left, the MILP over each computation's clocks one step either side of
   the best plan's, warm-started from it, then the exchange again.
Every plan is re-scored exactly by the pipeline executor before it is kept.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from .pipeline_problem import PipelineProblem, lower_hull

_TOL = 1e-9


class Work:
    """A budget of nominal CPU seconds spent by a cost model of the work done, not by a clock: a
    clock's reading depends on the machine's load, so a wall- or CPU-time budget makes the plan
    drift from run to run. The costs are fitted on the shared 2-core machine (A40 profiles, 8
    stages, N = 12 and 24, process CPU time): a warm simplex iteration of the hull LP costs about
    ``S_PER_LP_ITER_COLUMN`` seconds per LP column, one inside a MILP's branch and bound (cuts,
    heuristics, node LPs) ``S_PER_MILP_ITER_COLUMN``, timing one exchange pair
    ``S_PER_PAIR_OP`` per computation."""

    S_PER_LP_ITER_COLUMN = 3.8e-8
    S_PER_MILP_ITER_COLUMN = 1.4e-7
    S_PER_PAIR_OP = 2.5e-9
    S_PER_CALL = 1e-3

    def __init__(self, budget_s: float, progress: Callable[[int, int], None] | None = None):
        self.budget_s = float(budget_s)
        self.spent_s = 0.0
        self._progress = progress
        self._shown = -1

    def _spend(self, s: float) -> None:
        self.spent_s += s
        done = int(min(self.spent_s, self.budget_s))
        if self._progress is not None and done != self._shown:
            self._shown = done
            self._progress(done, int(np.ceil(self.budget_s)))

    def ok(self, need_s: float = 0.0) -> bool:
        """Whether more than ``need_s`` of the budget is left."""
        return self.budget_s - self.spent_s > need_s

    def lp(self, iterations: int, columns: int) -> None:
        self._spend(self.S_PER_CALL + self.S_PER_LP_ITER_COLUMN * iterations * columns)

    def milp(self, stats: dict) -> None:
        """``stats``: what pipeline_milp.milp_plan reports."""
        self._spend(self.S_PER_CALL +
                    self.S_PER_MILP_ITER_COLUMN * stats["lp_iterations"] * stats["columns"])

    def pairs(self, count: int, ops: int) -> None:
        self._spend(self.S_PER_CALL + self.S_PER_PAIR_OP * count * ops)


def feasible_options(prob: PipelineProblem, deadline_s: float) -> list[np.ndarray]:
    """Per computation, the option indices that fit its total float at T (all others fastest)."""
    n = prob.num_ops
    t0 = prob.op_times(np.zeros(n, dtype=np.int64)).tolist()
    ef = [0.0] * n
    for i in range(n):
        ef[i] = max((ef[p] for p in prob.preds[i]), default=0.0) + t0[i]
    limit = deadline_s * (1 + 1e-12)
    lf = [0.0] * n
    for i in range(n - 1, -1, -1):
        lf[i] = min((lf[q] - t0[q] for q in prob.succ[i]), default=limit)
    out = []
    for i, key in enumerate(prob.op_key):
        room = lf[i] - (ef[i] - t0[i])
        t = prob.options[key].time_s
        out.append(np.arange(max(int(np.searchsorted(t, room * (1 + 1e-12), side="right")), 1)))
    return out


def feasible_hull(prob: PipelineProblem, deadline_s: float) -> list[np.ndarray]:
    """Per computation, the option indices on the lower convex hull of its feasible clocks."""
    out = []
    for key, a in zip(prob.op_key, feasible_options(prob, deadline_s)):
        o = prob.options[key]
        out.append(a[lower_hull(o.time_s[a], o.cost_j[a])])
    return out


class HullLP:
    """The LP above, kept in one HiGHS instance: fixing a computation only moves bounds, so each
    re-solve restarts warm from the previous basis."""

    def __init__(self, prob: PipelineProblem, deadline_s: float,
                 allowed: list[np.ndarray] | None = None, work: Work | None = None):
        import highspy

        from ._highs import new_highs

        self.prob = prob
        n = prob.num_ops
        self.allowed = allowed if allowed is not None else feasible_hull(prob, deadline_s)
        self.times = [prob.options[k].time_s[a] for k, a in zip(prob.op_key, self.allowed)]
        costs = [prob.options[k].cost_j[a] for k, a in zip(prob.op_key, self.allowed)]
        sizes = np.array([len(a) for a in self.allowed])
        self.col0 = n + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        nb = int(sizes.sum())
        rows, cols, vals = [], [], []
        r = 0
        for i in range(n):
            ycols = np.arange(self.col0[i], self.col0[i] + sizes[i])
            for p in (prob.preds[i] or [-1]):
                # x_i - x_p - sum_j t_ij y_ij >= 0
                rows += [r] * (1 + (p >= 0) + sizes[i])
                cols += [i] + ([p] if p >= 0 else []) + ycols.tolist()
                vals += [1.0] + ([-1.0] if p >= 0 else []) + (-self.times[i]).tolist()
                r += 1
        nprec = r
        mcol = n + nb
        for i in range(n):
            if not prob.succ[i]:
                rows += [r, r]
                cols += [mcol, i]
                vals += [1.0, -1.0]
                r += 1
        nsink = r - nprec
        for i in range(n):
            rows += [r] * sizes[i]
            cols += list(range(self.col0[i], self.col0[i] + sizes[i]))
            vals += [1.0] * sizes[i]
            r += 1
        a = sp.csr_matrix((vals, (rows, cols)), shape=(r, n + nb + 1)).tocsc()
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        nv = n + nb + 1
        lp.num_col_, lp.num_row_ = nv, r
        lp.col_cost_ = np.concatenate([np.zeros(n)] + costs +
                                      [[prob.blocking_power_w * prob.stages]])
        lp.col_lower_ = np.zeros(nv)
        lp.col_upper_ = np.concatenate([np.full(n, inf), np.ones(nb), [deadline_s]])
        lp.row_lower_ = np.concatenate([np.zeros(nprec + nsink), np.ones(n)])
        lp.row_upper_ = np.concatenate([np.full(nprec + nsink, inf), np.ones(n)])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        h = new_highs()
        h.passModel(lp)
        self.h, self.n, self.nb, self.sizes = h, n, nb, sizes
        self.work = work
        self.costs = costs
        self._highspy = highspy
        # the value of a second of T to the LP: the blocking power of every stage (a cheap
        # estimate of what rounding a computation up costs the rest)
        self.price = prob.blocking_power_w * prob.stages

    def trial(self, i: int, j: int) -> tuple[np.ndarray, float] | None:
        """Solve with computation ``i`` fixed to position ``j``, then free it again."""
        c0, k = int(self.col0[i]), int(self.sizes[i])
        idx = np.arange(c0, c0 + k, dtype=np.int32)
        self.fix(np.array([i]), np.array([j]))
        out = self.solve()
        self.h.changeColsBounds(k, idx, np.zeros(k), np.ones(k))
        return out

    def solve(self) -> tuple[np.ndarray, float] | None:
        """(y, optimum) or None when the fixings leave no plan finishing by T."""
        h = self.h
        h.run()
        if self.work is not None:
            self.work.lp(h.getInfo().simplex_iteration_count, self.n + self.nb + 1)
        if h.getModelStatus() != self._highspy.HighsModelStatus.kOptimal:
            return None
        x = np.asarray(h.getSolution().col_value)
        return x[self.n:self.n + self.nb], float(h.getInfo().objective_function_value)

    def fix(self, ops: np.ndarray, pos: np.ndarray) -> None:
        """Fix each computation ``ops[k]`` to its allowed option at position ``pos[k]``."""
        lo, hi, idx = [], [], []
        for i, j in zip(ops.tolist(), pos.tolist()):
            c0, k = int(self.col0[i]), int(self.sizes[i])
            idx.extend(range(c0, c0 + k))
            z = np.zeros(k)
            o = z.copy()
            z[j] = o[j] = 1.0
            lo.append(z)
            hi.append(o)
        if idx:
            self.h.changeColsBounds(len(idx), np.array(idx, dtype=np.int32),
                                    np.concatenate(lo), np.concatenate(hi))


def tight_bound(prob: PipelineProblem, deadline_s: float) -> float:
    """The hull LP's optimum over feasible clocks: a lower bound on every plan of time <= T."""
    out = HullLP(prob, deadline_s).solve()
    if out is None:
        raise ValueError("no plan finishes by T")
    return out[1]


def _frac(lp: HullLP, y: np.ndarray, i: int) -> tuple[float, np.ndarray]:
    yi = y[lp.col0[i] - lp.n:lp.col0[i] - lp.n + lp.sizes[i]]
    return float(yi @ lp.times[i]), yi


def dive(prob: PipelineProblem, deadline_s: float, lp: HullLP | None = None,
         candidates: int = 1, order: str = "cost") -> tuple[np.ndarray, float]:
    """LP-guided rounding (see the module doc): (option index per computation, the relaxed
    optimum it started from). Each round tries, for the ``candidates`` fractional computations
    first in ``order`` ("cost": whose rounding looks cheapest; "fractional": whose LP weight
    is nearest one clock), the clock just faster and the one just slower than the relaxed
    duration, re-solving the LP for each, and keeps the one with the lowest optimum; the LP
    then stays feasible, so the plan finishes by T by construction. When the LP's ``work``
    budget runs out, every computation still fractional is rounded down at once."""
    lp = lp if lp is not None else HullLP(prob, deadline_s)
    n = prob.num_ops
    free = np.ones(n, dtype=bool)
    pos = np.zeros(n, dtype=np.int64)
    out = lp.solve()
    if out is None:
        raise ValueError("no plan finishes by T")
    y, first = out
    while True:
        frac, moves = [], []
        for i in np.flatnonzero(free).tolist():
            d, yi = _frac(lp, y, i)
            if yi.max() >= 1 - _TOL:
                continue
            t = lp.times[i]
            c = lp.costs[i]
            k = max(int(np.searchsorted(t, d * (1 + 1e-12), side="right")) - 1, 0)
            here = float(yi @ c)
            frac.append(i)
            if order == "fractional":
                # the computations the LP has nearly decided first
                moves.append((1 - yi.max(), i, k))
                if k + 1 < len(t):
                    moves.append((1 - yi.max(), i, k + 1))
            else:
                moves.append((c[k] - here, i, k))
                if k + 1 < len(t):
                    moves.append((c[k + 1] - here + lp.price * (t[k + 1] - d), i, k + 1))
        if not frac:
            break
        moves.sort()
        if lp.work is not None and not lp.work.ok():
            # out of work: round every fractional computation down at once (stays feasible)
            for est, i, k in moves:
                if free[i] and lp.times[i][k] <= _frac(lp, y, i)[0] * (1 + 1e-12):
                    free[i] = False
                    pos[i] = k
            break
        best = None
        seen = set()
        for est, i, k in moves:
            if len(seen) >= candidates and i not in seen:
                continue
            seen.add(i)
            val = lp.trial(i, k)
            if val is not None and (best is None or val[1] < best[0]):
                best = (val[1], i, k, val[0])
        if best is None:        # cannot happen: rounding down keeps the LP's solution feasible
            raise RuntimeError("the dive lost feasibility")
        _, i, k, y = best
        lp.fix(np.array([i]), np.array([k]))
        free[i] = False
        pos[i] = k
    # the rest sit on one clock each in the last LP solution
    for i in np.flatnonzero(free).tolist():
        pos[i] = int(np.argmax(_frac(lp, y, i)[1]))
    choice = np.array([lp.allowed[i][pos[i]] for i in range(n)], dtype=np.int64)
    limit = deadline_s * (1 + 1e-12)
    if _batch_makespans(prob, prob.op_times(choice)[:, None])[0] > limit:
        # the LP holds T only to HiGHS's feasibility tolerance (~1e-7 s): crash the overrun
        from .pipeline_lp import crash

        choice = crash(prob, choice, deadline_s)
        if choice is None:
            raise RuntimeError("the dive overran T and cannot be repaired")
    return choice, first


def _batch_makespans(prob: PipelineProblem, dur: np.ndarray) -> np.ndarray:
    """Iteration times of many plans at once: ``dur`` is (computations, plans)."""
    end = np.empty_like(dur)
    for i, p in enumerate(prob.preds):
        if not p:
            end[i] = dur[i]
        elif len(p) == 1:
            np.add(end[p[0]], dur[i], out=end[i])
        else:
            np.add(np.maximum(end[p[0]], end[p[1]]), dur[i], out=end[i])
    sinks = [i for i in range(prob.num_ops) if not prob.succ[i]]
    return end[sinks].max(axis=0)


def _floats(prob: PipelineProblem, dur: np.ndarray, limit: float) -> np.ndarray:
    """Total float of every computation: how much longer it may take with all else fixed."""
    n = prob.num_ops
    d = dur.tolist()
    ef = [0.0] * n
    for i, p in enumerate(prob.preds):
        ef[i] = max((ef[q] for q in p), default=0.0) + d[i]
    lf = [0.0] * n
    for i in range(n - 1, -1, -1):
        lf[i] = min((lf[q] - d[q] for q in prob.succ[i]), default=limit)
    return np.array(lf) - np.array(ef)


def exchange(prob: PipelineProblem, choice: np.ndarray, deadline_s: float,
             steps: int = 3, work: Work | None = None, chunk: int = 4096,
             apply: int = 64) -> np.ndarray:
    """Pairwise exchange of time: slow one computation down and speed another up (each by up to
    ``steps`` clocks) where that lowers the energy and still finishes by T, then fill the slack
    left; repeat until no pair helps (or ``work`` runs out).

    Only pairs that can matter are timed: the slowed computation must overrun its float (else
    slack filling does it alone) and the sped-up one must lie on a path the overrun breaks
    (its float is below the overrun). Every pair is re-timed exactly on the DAG (vectorised);
    the ``apply`` best are then applied one after another, each kept only if the plan, re-timed
    with the ones before it, is still cheaper and finishes by T."""
    from .pipeline_lp import fill_slack

    n = prob.num_ops
    limit = deadline_s * (1 + 1e-12)
    price = prob.blocking_power_w * prob.stages
    opt_t = [prob.options[k].time_s for k in prob.op_key]
    opt_c = [prob.options[k].cost_j for k in prob.op_key]
    cur = fill_slack(prob, choice, deadline_s)
    best_e = energy_of(prob, cur)
    while work is None or work.ok():
        dur = prob.op_times(cur)
        cost = prob.op_costs(cur)
        fl = _floats(prob, dur, limit)
        mk0 = float(_batch_makespans(prob, dur[:, None])[0])
        op, to, dt, dc = [], [], [], []
        for i in range(n):
            js = np.arange(max(cur[i] - steps, 0), min(cur[i] + steps, len(opt_t[i]) - 1) + 1)
            js = js[js != cur[i]]
            op.append(np.full(len(js), i))
            to.append(js)
            dt.append(opt_t[i][js] - dur[i])
            dc.append(opt_c[i][js] - cost[i])
        op, to, dt, dc = (np.concatenate(v) for v in (op, to, dt, dc))
        up = np.flatnonzero((dt > 0) & (dt > fl[op]))
        dn = np.flatnonzero(dt < 0)
        a, b = (v.ravel() for v in np.meshgrid(up, dn, indexing="ij"))
        gain = dc[a] + dc[b]
        keep = (gain < 0) & (op[a] != op[b]) & (fl[op[b]] < dt[a])
        a, b, gain = a[keep], b[keep], gain[keep]
        if work is not None:
            work.pairs(len(a), n)
        found_de, found = [], []
        for s in range(0, len(a), chunk):
            aa, bb = a[s:s + chunk], b[s:s + chunk]
            d = np.repeat(dur[:, None], len(aa), axis=1)
            cols = np.arange(len(aa))
            d[op[aa], cols] += dt[aa]
            d[op[bb], cols] += dt[bb]
            mk = _batch_makespans(prob, d)
            de = np.where(mk <= limit, gain[s:s + chunk] + price * (mk - mk0), np.inf)
            good = np.flatnonzero(de < -1e-12 * best_e)
            found_de.append(de[good])
            found.append(s + good)
        found_de = np.concatenate(found_de) if found_de else np.zeros(0)
        found = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        if not len(found):
            break
        moved = False
        for k in found[np.argsort(found_de, kind="stable")][:apply].tolist():
            trial = cur.copy()
            trial[op[a[k]]] = to[a[k]]
            trial[op[b[k]]] = to[b[k]]
            e = energy_of(prob, trial)
            if e < best_e * (1 - 1e-12) and \
                    _batch_makespans(prob, prob.op_times(trial)[:, None])[0] <= limit:
                cur, best_e, moved = trial, e, True
        if not moved:
            break
        cur = fill_slack(prob, cur, deadline_s)
        best_e = energy_of(prob, cur)
    return cur


def energy_of(prob: PipelineProblem, choice: np.ndarray) -> float:
    """A plan's energy from its option indices: reduced costs + blocking power x makespan."""
    mk = float(_batch_makespans(prob, prob.op_times(choice)[:, None])[0])
    return float(prob.op_costs(choice).sum()) + prob.blocking_power_w * prob.stages * mk



def choice_of(prob: PipelineProblem, plan) -> np.ndarray:
    """A plan's option index per computation (its clocks are all among the problem's options)."""
    g = prob.graph
    freq = plan.freq_mhz.reshape(-1)[g.op_flat]
    fidx = np.searchsorted(prob.profile.freqs_mhz, freq)
    out = np.empty(prob.num_ops, dtype=np.int64)
    for i, (key, f) in enumerate(zip(prob.op_key, fidx.tolist())):
        hit = np.flatnonzero(prob.options[key].freq_index == f)
        if not len(hit):
            raise ValueError(f"computation {i} runs a clock that is not one of its options")
        out[i] = hit[0]
    return out


def hull_feasible(prob: PipelineProblem, deadline_s: float) -> list[np.ndarray]:
    """Per computation, the vertices of the convex hull of *all* its clocks that are feasible
    (its fastest clock where none is): a second, sparser set of clocks to dive over."""
    out = []
    for key, a in zip(prob.op_key, feasible_options(prob, deadline_s)):
        o = prob.options[key]
        h = lower_hull(o.time_s, o.cost_j)
        h = h[h <= a[-1]]
        out.append(h if len(h) else a[:1])
    return out


# the dives the polish tries, best first on the A40 profiles: (clock set, candidates per step,
# order); the LP is degenerate, so each lands elsewhere and none is best on every workload
DIVES = ((feasible_hull, 2, "cost"), (feasible_hull, 2, "fractional"), (hull_feasible, 2, "cost"),
         (hull_feasible, 2, "fractional"), (feasible_hull, 1, "cost"), (hull_feasible, 1, "cost"))


def polish(search, deadline_s: float, budget_s: float = 10.0,
           progress: Callable[[int, int], None] | None = None):
    """Polish the best plan of time <= T (module doc) within ``budget_s`` nominal CPU seconds
    (``Work``): the exchange from the sweep's best plan, the dives of DIVES while the work left
    covers one more (as much as the last cost), each slack-filled and exchanged, then the
    window and band MILPs. Every plan is re-scored and added to ``search``; returns the best
    candidate, and records the hull LP's bound in ``search.tight_bounds``. The result depends
    only on the problem and ``budget_s``, not on the machine's speed or load. ``progress``
    (nominal seconds spent, budget) is called after each step."""
    from .pipeline import add_choice
    from .pipeline_lp import fill_slack

    prob = search.problem
    work = Work(budget_s, progress)
    best = search.best_within(deadline_s)
    if best is not None:
        try:
            start = choice_of(prob, best.plan)
        except ValueError:          # a reference plan at a clock the options dropped
            start = None
        if start is not None:
            cand = add_choice(search, exchange(prob, start, deadline_s, work=work), deadline_s)
            best = cand if cand.energy_j < best.energy_j else best
    cost = 0.0
    for k, (clocks, candidates, order) in enumerate(DIVES):
        began = work.spent_s
        if k > 0 and not work.ok(cost):
            break
        try:
            # a fresh LP per dive: the LP is degenerate, and which optimal vertex HiGHS lands
            # on (so where the dive goes) depends on what was solved before
            lp = HullLP(prob, deadline_s, clocks(prob, deadline_s), work=work)
            choice, relaxed = dive(prob, deadline_s, lp=lp, candidates=candidates, order=order)
        except ValueError:          # T is below the all-fastest plan's time
            return best
        if clocks is feasible_hull:
            search.tight_bounds[deadline_s] = relaxed
        choice = exchange(prob, fill_slack(prob, choice, deadline_s), deadline_s, work=work)
        cand = add_choice(search, choice, deadline_s)
        if best is None or cand.energy_j < best.energy_j:
            best = cand
        cost = work.spent_s - began
    if best is not None:
        # one band MILP first (cheap, global), the windows (local but over every clock) while
        # they gain, then the band again with the work left
        best = _band_search(search, best, deadline_s, work, rounds=1)
        best = _window_search(search, best, deadline_s, work)
        best = _band_search(search, best, deadline_s, work)
    search.polish_work_s[deadline_s] = work.spent_s
    return best


# the window search: windows of WINDOW_FRAC * T (half overlapping), each MILP up to WINDOW_NODES
# branch-and-bound nodes; on the A40 profiles (8 x 12, 8 x 24) windows of ~40-60 computations
# prove optimal at the root or gain within a few dozen nodes, wider ones rarely finish
WINDOW_FRAC = 0.15
WINDOW_NODES = 30
MILP_SAFETY_S = 120.0      # a wall-clock net under the node limits, never meant to bind
BAND_NODES = 200
BAND_MIN_S = 1.0           # the band MILP's root alone costs about this at 384 computations


def _timeline(prob: PipelineProblem, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, finish) of every computation, each as early as its predecessors allow."""
    dur = prob.op_times(choice).tolist()
    end = [0.0] * prob.num_ops
    for i, p in enumerate(prob.preds):
        end[i] = max((end[q] for q in p), default=0.0) + dur[i]
    end = np.array(end)
    return end - np.array(dur), end


def _window_search(search, best, deadline_s: float, work: Work):
    """Sweeps of window MILPs over the best plan's timeline (module doc, step 3), each
    warm-started from the current plan (so never worse), while the work lasts."""
    from .pipeline import add_choice
    from .pipeline_milp import milp_plan

    prob = search.problem
    try:
        cur = choice_of(prob, best.plan)
    except ValueError:
        return best
    feasible = feasible_options(prob, deadline_s)
    width = WINDOW_FRAC * deadline_s
    gained = True
    while gained and work.ok():
        gained = False
        for k in range(int(np.ceil(2 * deadline_s / width))):
            if not work.ok():
                break
            lo = k * width / 2
            start, end = _timeline(prob, cur)
            inside = (end > lo) & (start < lo + width)
            allowed = [feasible[i] if inside[i] else cur[i:i + 1] for i in range(prob.num_ops)]
            if all(len(a) == 1 for a in allowed):
                continue
            stats: dict = {}
            choice, _, _ = milp_plan(prob, deadline_s, allowed, start=cur,
                                     time_limit_s=MILP_SAFETY_S, max_nodes=WINDOW_NODES,
                                     stats=stats)
            work.milp(stats)
            if choice is None or energy_of(prob, choice) >= energy_of(prob, cur) * (1 - 1e-12):
                continue
            choice = exchange(prob, choice, deadline_s, work=work)
            cand = add_choice(search, choice, deadline_s)
            if cand.time_s <= deadline_s * (1 + 1e-12) and cand.energy_j < best.energy_j:
                best, cur, gained = cand, choice, True
    return best


def _band_search(search, best, deadline_s: float, work: Work, rounds: int | None = None):
    """With the work left: the MILP over each computation's clocks one step either side of
    the best plan's (pipeline_milp, warm-started from it, so never worse), then the exchange;
    repeated while it gains (at most ``rounds`` times)."""
    from .pipeline import add_choice
    from .pipeline_milp import milp_plan

    prob = search.problem
    try:
        cur = choice_of(prob, best.plan)
    except ValueError:
        return best
    top = [a[-1] for a in feasible_options(prob, deadline_s)]
    done = 0
    while work.ok(BAND_MIN_S) and (rounds is None or done < rounds):
        done += 1
        allowed = [np.arange(max(c - 1, 0), max(min(c + 1, t), c) + 1)
                   for c, t in zip(cur.tolist(), top)]
        stats: dict = {}
        choice, _, _ = milp_plan(prob, deadline_s, allowed, start=cur,
                                 time_limit_s=MILP_SAFETY_S, max_nodes=BAND_NODES, stats=stats)
        work.milp(stats)
        if choice is None:
            break
        choice = exchange(prob, choice, deadline_s, work=work)
        cand = add_choice(search, choice, deadline_s)
        if cand.time_s > deadline_s * (1 + 1e-12) or \
                cand.energy_j >= best.energy_j * (1 - 1e-9):
            break
        best, cur = cand, choice
    return best
