"""Sample-efficient partition frontiers when every evaluation is a real GPU measurement.

Multi-objective Bayesian optimisation over a partition's discrete options (SM clock x overlap
choice): two Gaussian-process surrogates, one for log time and one for log total energy, and
each next measurement is the option with the largest expected hypervolume improvement (EHVI)
over the frontier measured so far. The returned frontier holds the measured options at their
measured values and, unless ``predict=False``, the unmeasured options the final surrogates
place on it with confidence, at their predicted values (flagged in ``meta["predicted"]``): a
frontier of n clock steps needs most of its n points, more than a 15 % budget measures.

Surrogate (the same form for both objectives, fitted by maximum marginal likelihood):
    y(g, o) = b0 + b1 * g  +  c_o  +  s2 * Matern52(g, g'; l) * (rho + (1 - rho) * [o == o'])
              + noise
with g = f_max / f scaled to [0, 1] (compute-bound time is linear in it) and o the overlap
choice. Per overlap choice, time and energy are smooth in the clock and the curves of the
choices are nearly parallel (the collective's share barely depends on the clock), so the
kernel has a level per choice (c_o, variance sc2) on top of one curve every choice shares
(rho) and a part of its own: one measurement of a choice places its whole curve.

Start design: every overlap choice at the fastest clock (the baseline's clock, where the
choices differ most), then the slowest clock of the choice that was fastest there; after that
EHVI picks. A partition whose choices outnumber half the budget starts from a max-min spread
instead. A partition too small for a surrogate (``borrows_shape``) is measured at the Chebyshev
nodes of each choice's clocks and borrows the power-vs-clock shape of partitions sampled
before it (``clock_power_curves``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..model.profile import Overlap
from .partition_frontier import Option, PartitionFrontier, frontier_from_points, pareto_indices

SHORTLIST = 48
PREDICT_MAX_SD = 0.01     # a predicted point joins the frontier when both log-sds are below this
Measure = Callable[[int, Overlap], tuple[float, float]]    # (freq_mhz, overlap) -> (time, energy)


@dataclass
class SampledFrontier:
    frontier: PartitionFrontier
    measured: list[tuple[Option, float, float]]            # in measurement order, energy total
    initial: int                                           # how many came from the start design
    meta: dict = field(default_factory=dict)
    predicted: list[tuple[Option, float, float]] = field(default_factory=list)   # on the frontier, unmeasured


def _features(options: Sequence[Option]) -> tuple[np.ndarray, np.ndarray]:
    f = np.array([o[0] for o in options], dtype=float)
    inv = f.max() / f
    g = (inv - inv.min()) / (inv.max() - inv.min()) if inv.max() > inv.min() else np.zeros_like(f)
    kinds = {ov: i for i, ov in enumerate(sorted({o[1] for o in options}))}
    return g, np.array([kinds[o[1]] for o in options])


def _matern52(d: np.ndarray, length: float) -> np.ndarray:
    r = math.sqrt(5.0) * np.abs(d) / length
    return (1.0 + r + r * r / 3.0) * np.exp(-r)


class _GP:
    """Exact GP regression with the kernel in the module docstring (a handful of points)."""

    BOUNDS = [(math.log(0.03), math.log(3.0)),     # lengthscale over g
              (math.log(1e-3), math.log(10.0)),    # s2
              (-4.6, 4.6),                          # logit rho
              (math.log(1e-4), math.log(10.0)),    # linear-trend variance
              (math.log(1e-8), math.log(1e-1)),    # noise
              (math.log(1e-6), math.log(10.0))]    # level per overlap choice

    def __init__(self, theta: np.ndarray | None = None):
        self.theta = np.array([math.log(0.3), 0.0, 1.0, 0.0, math.log(1e-4), 0.0]) \
            if theta is None else theta
        self.tuned = False

    def _k(self, theta, g1, o1, g2, o2):
        length, s2, rho, sb2, sc2 = (math.exp(theta[0]), math.exp(theta[1]),
                                     1.0 / (1.0 + math.exp(-theta[2])), math.exp(theta[3]),
                                     math.exp(theta[5]))
        same = (o1[:, None] == o2[None, :])
        k = s2 * _matern52(g1[:, None] - g2[None, :], length) * (rho + (1.0 - rho) * same)
        return k + sb2 * (1.0 + g1[:, None] * g2[None, :]) + sc2 * same

    def _nll(self, theta, g, o, y):
        from scipy.linalg import cho_solve  # noqa: PLC0415

        k = self._k(theta, g, o, g, o) + (math.exp(theta[4]) + 1e-9) * np.eye(g.size)
        try:
            chol = np.linalg.cholesky(k)
        except np.linalg.LinAlgError:
            return 1e10
        alpha = cho_solve((chol, True), y, check_finite=False)
        return float(0.5 * y @ alpha + np.log(np.diag(chol)).sum())

    def fit(self, g, o, y_raw, tune: bool = True):
        """Condition on the data; ``tune`` also re-fits the hyperparameters (the slow part)."""
        from scipy.linalg import cho_solve  # noqa: PLC0415  (scipy only when sampling)
        from scipy.optimize import minimize  # noqa: PLC0415

        self.mu, self.sd = float(y_raw.mean()), float(y_raw.std() or 1.0)
        y = (y_raw - self.mu) / self.sd
        if tune:
            best = None
            starts = [self.theta]
            if not self.tuned:     # a second start only the first time, before theta is informed
                starts.append(np.array([math.log(0.15), 0.0, 1.0, -2.0, math.log(1e-4), -2.0]))
            self.tuned = True
            for start in starts:
                res = minimize(self._nll, start, args=(g, o, y), method="L-BFGS-B",
                               bounds=self.BOUNDS, options={"maxiter": 40})
                if best is None or res.fun < best.fun:
                    best = res
            self.theta = best.x
        self.g, self.o, self.y = g, o, y
        k = self._k(self.theta, g, o, g, o) + (math.exp(self.theta[4]) + 1e-9) * np.eye(g.size)
        self.chol = np.linalg.cholesky(k)
        self.alpha = cho_solve((self.chol, True), y, check_finite=False)
        return self

    def predict(self, g, o) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import solve_triangular  # noqa: PLC0415

        ks = self._k(self.theta, g, o, self.g, self.o)
        mean = ks @ self.alpha
        v = solve_triangular(self.chol, ks.T, lower=True, check_finite=False)
        prior = (math.exp(self.theta[1]) + math.exp(self.theta[3]) * (1.0 + g * g)
                 + math.exp(self.theta[5]))
        var = np.maximum(prior - (v * v).sum(axis=0), 1e-12)
        return self.mu + self.sd * mean, self.sd * np.sqrt(var)


def _hv_improvement(t: np.ndarray, e: np.ndarray, front_t: np.ndarray, front_e: np.ndarray,
                    ref: tuple[float, float]) -> np.ndarray:
    """Hypervolume each (t, e) adds to a Pareto staircase (time-sorted), any array shape."""
    # the staircase's energy level on [edge_j, edge_j+1): ref before the first point
    edges = np.concatenate([front_t, [ref[0]]])
    levels = np.concatenate([[ref[1]], front_e])
    lefts = np.concatenate([[-np.inf], front_t])
    rights = edges
    t = np.minimum(t, ref[0])[..., None]
    e = e[..., None]
    width = np.clip(rights - np.maximum(lefts, t), 0.0, None)
    height = np.clip(np.minimum(levels, ref[1]) - e, 0.0, None)
    return (width * height).sum(axis=-1)


def _start_design(g: np.ndarray, o: np.ndarray, n: int, first_kind: int) -> list[int]:
    """Fastest and slowest clock of one overlap choice, then greedy max-min spread."""
    mine = np.flatnonzero(o == first_kind)
    chosen = [int(mine[np.argmin(g[mine])]), int(mine[np.argmax(g[mine])])]
    while len(chosen) < n:
        d = np.full(g.size, np.inf)
        for c in chosen:
            d = np.minimum(d, np.abs(g - g[c]) + 0.5 * (o != o[c]))
        d[chosen] = -1.0
        chosen.append(int(np.argmax(d)))
    return list(dict.fromkeys(chosen))[:n]


def borrows_shape(count: int, n_kinds: int) -> bool:
    """Whether ``count`` measurements are too few for a surrogate over ``n_kinds`` overlap
    choices: fewer than the screen (one per choice) plus both clock ends of each choice."""
    return count < 2 * n_kinds + 2


def _predicted_points(ts, es, measured_idx, mean_t, sd_t, mean_e, sd_e, max_sd):
    """Unmeasured options whose predicted point lies on the frontier of measured and
    predicted points, where both surrogates are confident (sd of the log <= ``max_sd``)."""
    n = mean_t.size
    t, e = np.exp(mean_t), np.exp(mean_e)
    known = np.zeros(n, dtype=bool)
    known[measured_idx] = True
    t[measured_idx], e[measured_idx] = ts, es
    ok = known | ((sd_t <= max_sd) & (sd_e <= max_sd))
    cand = np.flatnonzero(ok)
    front = cand[pareto_indices(t[cand], e[cand])]
    return [int(i) for i in front if not known[i]], t, e


def clock_power_curves(res: "SampledFrontier") -> list[tuple[np.ndarray, np.ndarray]]:
    """(freq_mhz, power_w) per overlap choice over every clock, from a sampled partition's
    measurements and its surrogates' means: what a partition with too few measurements for its
    own surrogate borrows the shape of its power-vs-clock curve from (``sample_frontier(shapes=)``)."""
    pred = res.meta.get("prediction")
    if pred is None:
        return []
    out = []
    opts = pred["options"]
    for ov in sorted({o[1] for o in opts}):
        idx = [i for i, o in enumerate(opts) if o[1] == ov]
        f = np.array([opts[i][0] for i in idx], dtype=float)
        order = np.argsort(f)
        p = pred["energy_j"][idx] / pred["time_s"][idx]
        if f.size >= 3 and np.isfinite(p).all():
            out.append((f[order], p[order]))
    return out


def _shape(curves, f, lo, hi) -> np.ndarray | None:
    """Mean over ``curves`` of the power curve normalised to 0 at clock ``lo``, 1 at ``hi``."""
    got = []
    for cf, cp in curves:
        if cf[0] > min(f.min(), lo) or cf[-1] < max(f.max(), hi):
            continue
        at = np.interp(f, cf, cp)
        p_lo, p_hi = np.interp(lo, cf, cp), np.interp(hi, cf, cp)
        if abs(p_hi - p_lo) > 1e-9 * abs(p_hi):
            got.append((at - p_lo) / (p_hi - p_lo))
    return np.mean(got, axis=0) if got else None


def sample_frontier(options: Sequence[Option], measure: Measure, budget: float | int = 0.15, *,
                    partition: int = 0, static_power_w: float = 0.0, seed: int = 0,
                    initial: int | None = None, mc_samples: int = 96,
                    prefer_overlap: Overlap | None = None, predict: bool = True,
                    max_sd: float = PREDICT_MAX_SD,
                    shapes: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> SampledFrontier:
    """Find a partition's frontier measuring at most ``budget`` of its options.

    ``budget``: a fraction of ``len(options)`` (< 1) or a count. ``measure(freq_mhz, overlap)``
    runs the partition once and returns (time_s, energy_j); ``static_power_w`` is added per
    second when those energies exclude static power. ``initial``: size of a max-min start design
    (default: the screen of the module docstring, else a third of the budget, at least 3).
    ``prefer_overlap``: the overlap choice measured first (default: the first in sorted order).
    ``predict``: also put on the frontier the unmeasured options the surrogates place on it
    with confidence (sd of log time and log energy <= ``max_sd``), at their predicted values,
    flagged in ``frontier.meta["predicted"]``; False: measured options only.
    ``shapes``: power-vs-clock curves of other partitions on the same device
    (``clock_power_curves``); with too few measurements for its own surrogate, the
    partition (``borrows_shape``) measures each choice's extreme clocks and borrows the curves' shape in between.
    """
    options = list(options)
    n_opts = len(options)
    if n_opts == 0:
        raise ConfigError("no options to sample", "list at least one (clock, overlap) option")
    count = int(math.floor(budget * n_opts + 1e-9)) if budget < 1 else int(budget)
    count = max(min(count, n_opts), min(2, n_opts))
    n0 = initial if initial is not None else max(3, count // 3)
    n0 = max(1, min(n0, count))
    g, o = _features(options)
    kinds = sorted({ov for _, ov in options})
    first_kind = kinds.index(prefer_overlap) if prefer_overlap in kinds else 0
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((mc_samples, 2))

    measured_idx: list[int] = []
    ts: list[float] = []
    es: list[float] = []

    def run(i: int) -> None:
        t, e = measure(*options[i])
        if not (t > 0 and e >= 0 and math.isfinite(t) and math.isfinite(e)):
            raise ConfigError(f"measuring option {options[i]} gave time_s={t}, energy_j={e}",
                              "check the device: time must be > 0 and energy >= 0")
        measured_idx.append(i)
        ts.append(float(t))
        es.append(float(e) + static_power_w * float(t))

    n_kinds = len(kinds)
    order = [first_kind] + [k for k in range(n_kinds) if k != first_kind]
    if shapes and borrows_shape(count, n_kinds) and initial is None:
        return _borrowed_shape(options, g, o, order, count, run, measured_idx, ts, es,
                               shapes, partition, predict)
    if initial is None and 1 < n_kinds <= count // 2:
        # screen: every overlap choice at the fastest clock, the preferred one first; then
        # the slowest clock of the fastest of them, so the shared curve spans the clock range
        for k in order:
            mine = np.flatnonzero(o == k)
            run(int(mine[np.argmin(g[mine])]))
        lead = o[measured_idx[int(np.argmin(ts))]]
        mine = np.flatnonzero(o == lead)
        slowest = int(mine[np.argmax(g[mine])])
        if slowest not in measured_idx:
            run(slowest)
        n0 = len(measured_idx)
    else:
        for i in _start_design(g, o, n0, first_kind):
            run(i)
    gp_t, gp_e = _GP(), _GP()
    tuned_at = 0
    while len(measured_idx) < count:
        mi = np.array(measured_idx)
        yt, ye = np.log(ts), np.log(es)
        # hyperparameters settle as data grows: re-tune after every 20% more measurements
        tune = mi.size >= tuned_at * 1.2 or mi.size - tuned_at >= 8
        tuned_at = mi.size if tune else tuned_at
        gp_t.fit(g[mi], o[mi], yt, tune)
        gp_e.fit(g[mi], o[mi], ye, tune)
        rest = np.setdiff1d(np.arange(n_opts), mi)
        mt, st = gp_t.predict(g[rest], o[rest])
        me, se = gp_e.predict(g[rest], o[rest])
        front = pareto_indices(ts, es)
        ft, fe = np.asarray(ts)[front], np.asarray(es)[front]
        # generous reference: the acquisition must still value points beyond today's extremes
        ref = (max(ts) + 0.1 * (max(ts) - min(ts)), max(es) + 0.1 * (max(es) - min(es)))
        # an optimistic bound screens out options that cannot plausibly improve the frontier,
        # so the Monte Carlo estimate runs on a few dozen candidates, not hundreds
        hopeful = _hv_improvement(np.exp(mt - 2 * st), np.exp(me - 2 * se), ft, fe, ref)
        short = np.argsort(-hopeful)[:SHORTLIST]
        short = short[hopeful[short] > 0]
        ehvi = np.zeros(0)
        if short.size:
            sample_t = np.exp(mt[short, None] + st[short, None] * z[None, :, 0])
            sample_e = np.exp(me[short, None] + se[short, None] * z[None, :, 1])
            ehvi = _hv_improvement(sample_t, sample_e, ft, fe, ref).mean(axis=1)
        if ehvi.size and ehvi.max() > 0:
            pick = rest[short[int(np.argmax(ehvi))]]
        else:   # nothing promises improvement: measure where the surrogates know least
            pick = rest[int(np.argmax(st / max(st.max(), 1e-12) + se / max(se.max(), 1e-12)))]
        run(int(pick))

    mi = np.array(measured_idx)
    pred_t = pred_e = None
    if predict and mi.size >= 3:
        gp_t.fit(g[mi], o[mi], np.log(ts), True)
        gp_e.fit(g[mi], o[mi], np.log(es), True)
        mt, st = gp_t.predict(g, o)
        me, se = gp_e.predict(g, o)
        extra, pred_t, pred_e = _predicted_points(ts, es, mi, mt, st, me, se, max_sd)
    else:
        extra = []
    return _result(partition, options, measured_idx, ts, es, extra, pred_t, pred_e, n0,
                   "gp-ehvi", count)


def _borrowed_shape(options, g, o, order, count, run, measured_idx, ts, es, shapes, partition,
                    predict) -> SampledFrontier:
    """Too few measurements for a surrogate per overlap choice: the budget split over the
    choices (in ``order``), each choice's share at the Chebyshev nodes of its clock list (one
    measurement: its fastest clock), which keep the largest interpolation error smallest. In
    between and beyond, time is affine in f_max / f (compute-bound time is) and power is the
    borrowed shape through the measurements; a third clock adds a curvature term to each
    (least squares)."""
    f = np.array([opt[0] for opt in options], dtype=float)
    share = [count // len(order) + (r < count % len(order)) for r in range(len(order))]
    for k, n in zip(order, share):
        mine = np.flatnonzero(o == k)
        by_g = mine[np.argsort(g[mine])]
        if n == 1 or by_g.size <= n:
            picks = by_g[:n]
        else:
            nodes = (by_g.size - 1) / 2 * (1 - np.cos((2 * np.arange(1, n + 1) - 1) * np.pi / (2 * n)))
            picks = by_g[np.unique(np.rint(nodes).astype(int))]
        for i in picks:
            run(int(i))
    pred_t = np.full(len(options), np.nan)
    pred_e = np.full(len(options), np.nan)
    for k in order:
        mine = np.flatnonzero(o == k)
        got = [j for j, i in enumerate(measured_idx) if o[i] == k]
        at = np.array([measured_idx[j] for j in got], dtype=int)
        if at.size < 2 or mine.size < 3 or np.ptp(g[at]) == 0:
            continue
        i_hi, i_lo = at[np.argmin(g[at])], at[np.argmax(g[at])]
        h = _shape(shapes, f[mine], f[i_lo], f[i_hi])
        if h is None:
            continue
        h_at = np.interp(f[at], f[mine][np.argsort(f[mine])], h[np.argsort(f[mine])])
        t_m = np.array([ts[j] for j in got])
        p_m = np.array([es[j] / ts[j] for j in got])
        # curvature only with a third clock: x (1 - x) vanishes at both measured ends
        gx = (g - g[i_hi]) / (g[i_lo] - g[i_hi])
        curve = at.size >= 3
        bt = [np.ones(mine.size), gx[mine]] + ([gx[mine] * (1 - gx[mine])] if curve else [])
        bp = [np.ones(mine.size), h] + ([h * (1 - h)] if curve else [])
        ct = np.linalg.lstsq(np.column_stack([b[np.searchsorted(mine, at)] for b in bt]), t_m,
                             rcond=None)[0]
        cp = np.linalg.lstsq(np.column_stack([np.ones(at.size), h_at]
                                             + ([h_at * (1 - h_at)] if curve else [])), p_m,
                             rcond=None)[0]
        t = np.column_stack(bt) @ ct
        pred_t[mine], pred_e[mine] = t, (np.column_stack(bp) @ cp) * t
    extra = []
    if predict:
        ok = np.isfinite(pred_t)
        sd = np.where(ok, 0.0, np.inf)      # borrowed shapes carry no sd of their own
        mt = np.log(np.where(ok, pred_t, 1.0))
        me = np.log(np.where(ok, pred_e, 1.0))
        extra, pred_t, pred_e = _predicted_points(ts, es, np.array(measured_idx, dtype=int),
                                                  mt, sd, me, sd, 1.0)
        pred_t[~ok], pred_e[~ok] = np.nan, np.nan
    return _result(partition, options, measured_idx, ts, es, extra, pred_t, pred_e,
                   len(measured_idx), "borrowed-shape", count)


def _result(partition, options, measured_idx, ts, es, extra, pred_t, pred_e, n0, method,
            count) -> SampledFrontier:
    pts_opts = [options[i] for i in measured_idx] + [options[i] for i in extra]
    pts_t = list(ts) + [float(pred_t[i]) for i in extra]
    pts_e = list(es) + [float(pred_e[i]) for i in extra]
    fr = frontier_from_points(partition, pts_opts, pts_t, pts_e,
                              num_options=len(options), num_measured=len(measured_idx))
    measured_set = {options[i] for i in measured_idx}
    fr.meta["predicted"] = [opt not in measured_set for opt in fr.options]
    meta = {"method": method, "budget": count}
    if pred_t is not None:
        full_t = np.array(pred_t, dtype=float)
        full_e = np.array(pred_e, dtype=float)
        full_t[measured_idx], full_e[measured_idx] = ts, es
        meta["prediction"] = {"options": options, "time_s": full_t, "energy_j": full_e}
    return SampledFrontier(fr, [(options[i], t, e) for i, t, e in zip(measured_idx, ts, es)], n0,
                           meta, [(options[i], float(pred_t[i]), float(pred_e[i])) for i in extra])
