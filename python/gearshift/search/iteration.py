"""The single-GPU search: Profile + Partitioning -> iteration Frontier and Schedule.

Partitions of one iteration run in sequence, so the iteration's frontier is the composition
of the partition frontiers (compose.py). A first pass composes every partition at a coarse
time quantum; each further pass re-searches only the partitions whose choice moves along the
selected part of the frontier, at a quantum four times finer and only up to the time the
selection can use, and merges what it finds. Passes stop when one improves no frontier point
of that part by more than ``tolerance`` (relative energy); every pass's gain is reported.
"""

from __future__ import annotations

import time as _time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..errors import FormatError
from ..objective import Objective, zeus_cost
from ..model import Choice, Frontier, FrontierPoint, Partitioning, Profile, Schedule, ScheduleEntry
from .compose import DEFAULT_UNITS, compose
from .partition_frontier import PartitionFrontier, pareto_indices, profile_frontiers
from .passes import PassReport
from .select import select

REFINE_FACTOR = 4
MIN_SAMPLED = 2              # a fractional sampling budget measures at least this many options
REFINE_CELLS = 8_000_000     # DP table cells one refinement pass may fill (~30 ms of work)


@dataclass
class IterationSearch:
    """Everything the search found; ``plan_iteration`` turns it into a Frontier and Schedule."""

    time_s: np.ndarray
    energy_j: np.ndarray
    choice_by_unit: np.ndarray            # (partitions, points): index into each frontier
    selected: int
    baseline_time_s: float
    baseline_energy_j: float
    passes: list[PassReport]
    error_bound_s: float


def profile_includes_static(profile: Profile) -> bool:
    """Whether a profile's energies already contain static power, read from its energy_scope.

    ``gpu`` (what an energy counter or the simulated GPU reports: the whole GPU's energy,
    static included) and every other scope count as total; a scope ending in ``-dynamic``
    (e.g. ``gpu-dynamic``) means static power was left out and the search adds
    ``device.static_power_w`` x time.
    """
    return not profile.energy_scope.endswith("-dynamic")


def _select_index(time_s: np.ndarray, energy_j: np.ndarray, objective: str,
                  base_t: float, base_e: float) -> int:
    """Index of the point ``search.select`` picks (its semantics, on the passes' raw arrays).

    ``time_s``/``energy_j`` are a Pareto staircase. Building tens of thousands of points for
    select would dominate a pass, so select sees only the points any of its objectives can
    pick (the fastest, the last within each time limit, the first within the energy limit, the
    least cost) and their neighbours.
    """
    sel = Objective.parse(objective)
    t0 = float(time_s[0])
    limits = [base_t, t0] + ([sel.value * t0] if sel.kind == "max-slowdown" else []) + (
        [sel.value] if sel.kind == "deadline" else [])
    cand = [0, time_s.size - 1]
    cand += [int(np.searchsorted(time_s, lim * (1 + 1e-9), side="right")) - 1 for lim in limits]
    cand.append(int(np.searchsorted(-energy_j, -base_e * (1 + 1e-9), side="left")))
    if sel.kind == "cost":
        cand.append(int(np.argmin(zeus_cost(energy_j, time_s, sel.value, base_e / base_t))))
    idx = sorted({min(max(c + d, 0), time_s.size - 1) for c in cand for d in (-1, 0, 1)})
    points = [FrontierPoint(float(time_s[i]), float(energy_j[i])) for i in idx]
    chosen = select(Frontier(points, baseline=FrontierPoint(base_t, base_e)), sel)
    return idx[next(k for k, p in enumerate(points) if p is chosen)]


def _merge(t_old, e_old, choice_old, t_new, e_new, choice_new):
    """Pareto union of two point sets; choices gathered only for the survivors."""
    t = np.concatenate([t_old, t_new])
    e = np.concatenate([e_old, e_new])
    keep = pareto_indices(t, e)
    old = keep < t_old.size
    out = np.empty((choice_old.shape[0], keep.size), dtype=choice_old.dtype)
    out[:, old] = choice_old[:, keep[old]]
    out[:, ~old] = choice_new[:, keep[~old] - t_old.size]
    return t[keep], e[keep], out


def _gain(old_t, old_e, new_t, new_e, lo, hi) -> float:
    """Largest relative drop of the least energy reachable by a time T in [lo, hi].

    Both frontiers are staircases, so the drop is largest at a new point's time: compare each
    new point in the window with the best old point no slower than it.
    """
    sel = np.flatnonzero((new_t >= lo) & (new_t <= hi))
    if sel.size == 0:
        return 0.0
    pos = np.searchsorted(old_t, new_t[sel] * (1 + 1e-12), side="right") - 1
    ok = pos >= 0
    if not ok.any():
        return 0.0
    old = old_e[pos[ok]]
    return float(max(((old - new_e[sel][ok]) / old).max(), 0.0))


def search_iteration(parts: Sequence[PartitionFrontier], objective: str, baseline_time_s: float,
                     baseline_energy_j: float, *, time_quantum_s: float | None = None, refine: bool = True,
                     tolerance: float = 1e-4, max_passes: int = 6,
                     window_frac: float = 0.01) -> IterationSearch:
    """Composition plus multi-pass refinement over partition frontiers (energies total).

    ``window_frac``: the selected part of the frontier is the points within this fraction of
    the selected point's time on either side.
    """
    Objective.parse(objective)
    started = _time.perf_counter()
    first = compose(parts, time_quantum_s)
    t, e, choice = first.time_s, first.energy_j, first.choice_by_unit
    sel = _select_index(t, e, objective, baseline_time_s, baseline_energy_j)
    passes = [PassReport(0, first.time_quantum_s, int(t.size), 0.0, float(t[sel]), float(e[sel]),
                         _time.perf_counter() - started, partitions_searched=len(parts),
                         error_bound_s=first.error_bound_s)]
    q = first.time_quantum_s
    bound = first.error_bound_s
    while refine and len(passes) < max_passes:
        started = _time.perf_counter()
        t_sel = float(t[sel])
        lo, hi = t_sel * (1 - window_frac), t_sel * (1 + window_frac)
        window = np.flatnonzero((t >= lo) & (t <= hi))
        moving = np.flatnonzero((choice[:, window] != choice[:, sel:sel + 1]).any(axis=1))
        if moving.size == 0:
            break
        fixed = np.setdiff1d(np.arange(len(parts)), moving)
        fixed_t = float(sum(parts[i].time_s[choice[i, sel]] for i in fixed))
        fixed_e = float(sum(parts[i].energy_j[choice[i, sel]] for i in fixed))
        sub = [parts[i] for i in moving]
        span = hi - fixed_t - sum(float(p.time_s[0]) for p in sub)
        if span <= 0:
            break
        # at least REFINE_FACTOR finer, and fine enough to resolve the window in detail
        q_next = min(q / REFINE_FACTOR, span / DEFAULT_UNITS)
        # keep each pass quick: the table work (options x time steps, summed over partitions)
        # stays under REFINE_CELLS
        q_next = max(q_next, span * sum(len(p) for p in sub) / REFINE_CELLS)
        if q_next >= q:
            break
        part = compose(sub, q_next, max_time_s=hi - fixed_t)
        full = np.repeat(choice[:, sel:sel + 1], len(part), axis=1)
        full[moving] = part.choice_by_unit
        new_t, new_e, new_choice = _merge(t, e, choice, part.time_s + fixed_t,
                                          part.energy_j + fixed_e, full)
        gain = _gain(t, e, new_t, new_e, lo, hi)
        t, e, choice = new_t, new_e, new_choice
        sel = _select_index(t, e, objective, baseline_time_s, baseline_energy_j)
        q = q_next
        passes.append(PassReport(len(passes), q, int(t.size), gain, float(t[sel]), float(e[sel]),
                                 _time.perf_counter() - started,
                                 partitions_searched=int(moving.size),
                                 error_bound_s=part.error_bound_s))
        if gain <= tolerance:
            break
    return IterationSearch(t, e, choice, sel, baseline_time_s, baseline_energy_j, passes, bound)


def baseline_options(profile: Profile, *, energy_includes_static: bool) -> list[tuple[int, object, float, float]]:
    """The all-max-clock run: per partition (freq_mhz, overlap, time_s, total energy_j).

    The clock is the device's max clock (the highest profiled one if that is missing). The
    overlap is what the training framework does without gearshift: the choice named by
    ``profile.extra["default_overlap"]`` if the profile has it, else ``serial`` (Megatron's
    tensor-parallel collectives), else ``none``; a
    partition with none of these profiled gets its fastest option at that clock, so the
    baseline is never weaker than a tuned run.
    """
    from ..model import Overlap  # noqa: PLC0415

    static = 0.0 if energy_includes_static else profile.device.static_power_w
    default = profile.extra.get("default_overlap")
    preferred = [Overlap.parse(default)] if isinstance(default, str) else []
    preferred += [Overlap("serial"), Overlap()]
    out = []
    for i, opts in enumerate(profile.by_partition()):
        top = max(o.freq_mhz for o in opts)
        fmax = profile.device.max_freq_mhz if any(
            o.freq_mhz == profile.device.max_freq_mhz for o in opts) else top
        at_max = [o for o in opts if o.freq_mhz == fmax]
        named = [o for ov in preferred for o in at_max if o.overlap == ov]
        best = named[0] if named else min(at_max, key=lambda o: (o.time_s, o.energy_j))
        out.append((best.freq_mhz, best.overlap, best.time_s, best.energy_j + static * best.time_s))
    return out


def _thin(t: np.ndarray, keep_always: Sequence[int], max_points: int) -> np.ndarray:
    """At most ~max_points indices spread evenly in time, plus the ones that must stay."""
    if t.size <= max_points:
        return np.arange(t.size)
    res = (t[-1] - t[0]) / max_points
    bucket = np.floor((t - t[0]) / res).astype(np.int64)
    last_of_bucket = np.flatnonzero(np.diff(np.append(bucket, bucket[-1] + 1)) != 0)
    return np.union1d(last_of_bucket, np.asarray(list(keep_always), dtype=np.int64))


def plan_iteration(profile: Profile, partitioning: Partitioning, trace_signature: str | None = None,
                   device_name: str | None = None, objective: str = "iso-time",
                   time_quantum_s: float | None = None, *,
                   energy_includes_static: bool | None = None, refine: bool = True,
                   tolerance: float = 1e-4, max_passes: int = 6,
                   max_points: int = 1000, baseline_point: tuple[float, float] | None = None,
                   nanobatches: int = 1,
                   sample_budget: float | None = None) -> tuple[Frontier, Schedule]:
    """Search a single GPU's iteration: returns (Frontier, Schedule).

    - ``profile``: every partition's options (freq_mhz, overlap) with time_s and energy_j.
    - ``partitioning``: the cut the profile was made for (start kernels and signatures).
    - ``trace_signature``: the model signature the runtime checks (default: the partitioning's).
    - ``device_name``: the device the schedule is for (default: ``profile.device.name``).
    - ``objective``: a selection of ``search.select``: ``iso-time`` (least energy at the
      all-max-clock time), ``fastest``, ``iso-energy`` (least time at the all-max energy),
      ``max-slowdown=X`` (least energy within X times the fastest time) or ``cost=ETA``.
    - ``time_quantum_s``: first pass's quantum (default: frontier span / 4096); later passes
      refine it near the selection. The frontier's ``meta`` states the error bound.
    - ``energy_includes_static``: whether the profile's energies already contain the GPU's
      static power (True for a GPU energy counter and for the simulated GPU). ``None`` reads it
      from ``profile.energy_scope`` (``...-dynamic`` means not). When False, the search charges
      ``profile.device.static_power_w`` for every second; static energy is never charged twice.

    - ``baseline_point``: (time_s, energy_j) of the run to compare with and select against
      (iso-time, iso-energy), when it is another program than this profile's all-max run:
      Megatron's default without nanobatches (search/baselines.py). The frontier's baseline
      then carries no choices.
    - ``nanobatches``: what the schedule records (the trace's split).
    - ``sample_budget``: measure only this fraction of each partition's options (< 1) or this
      many, chosen by the GP / expected-hypervolume search (search/sampling.py), the profile
      standing in for the device; what a measured profile costs per option makes this the
      default there. ``frontier.meta["sampling"]`` reports per partition the fraction measured
      and the hypervolume reached against the exhaustive frontier.

    Frontier energies are the GPU's total energy. Each point's choices are one ``Choice`` per
    partition, unit ``p<i>``. ``frontier.meta["passes"]`` reports each refinement pass's gain.
    """
    if profile.num_partitions != len(partitioning):
        raise FormatError(None, "num_partitions",
                          f"the profile has {profile.num_partitions} partitions, the partitioning "
                          f"{len(partitioning)}", "profile this partitioning (`gearshift profile`)")
    sig = partitioning.signature()
    if profile.partitioning_signature and profile.partitioning_signature != sig:
        raise FormatError(None, "partitioning_signature",
                          f"the profile was made for partitioning {profile.partitioning_signature}, "
                          f"this partitioning is {sig}",
                          "profile this partitioning again, or pass the one it was made for")
    if energy_includes_static is None:
        energy_includes_static = profile_includes_static(profile)
    parts = profile_frontiers(profile, energy_includes_static=energy_includes_static)
    sampling = None
    if sample_budget is not None and sample_budget > 0:
        parts, sampling = sampled_frontiers(profile, parts, sample_budget,
                                            energy_includes_static=energy_includes_static)
    base = baseline_options(profile, energy_includes_static=energy_includes_static)
    base_t = float(sum(b[2] for b in base))
    base_e = float(sum(b[3] for b in base))
    if baseline_point is not None:
        base_t, base_e = float(baseline_point[0]), float(baseline_point[1])
    result = search_iteration(parts, objective, base_t, base_e, time_quantum_s=time_quantum_s,
                              refine=refine, tolerance=tolerance, max_passes=max_passes)
    chosen_sel = Objective.parse(objective)

    units = [f"p{i}" for i in range(len(parts))]
    table = [[Choice(units[i], int(f), ov) for f, ov in p.options] for i, p in enumerate(parts)]
    keep = _thin(result.time_s, [0, result.selected, result.time_s.size - 1], max_points)
    picked = result.choice_by_unit[:, keep].T.tolist()
    points = [FrontierPoint(float(result.time_s[k]), float(result.energy_j[k]),
                            [table[i][c] for i, c in enumerate(row)]) for k, row in zip(keep, picked)]
    baseline = FrontierPoint(base_t, base_e, [] if baseline_point is not None else
                             [Choice(units[i], int(f), ov) for i, (f, ov, _, _) in enumerate(base)])
    scope = profile.energy_scope.removesuffix("-dynamic")
    frontier = Frontier(points, energy_scope=scope, source=profile.source, baseline=baseline,
                        meta={"level": "iteration", "objective": objective,
                              # what `gearshift report` checks a schedule against
                              "model_signature": trace_signature or partitioning.trace_signature,
                              "device": device_name or profile.device.name,
                              "error_bound_s": result.error_bound_s,
                              "includes_static_energy": True,
                              "passes": [asdict(p) for p in result.passes]})
    if sampling is not None:
        frontier.meta["sampling"] = sampling
    # the schedule is what search.select picks on the frontier we hand out, by construction
    chosen = select(frontier, objective)
    if sampling is not None:
        frontier.meta["sampling_selected"] = _rescore_on_profile(profile, parts, chosen,
                                                                 energy_includes_static)
    frontier.meta["selected_index"] = next(i for i, p in enumerate(points) if p is chosen)
    entries = []
    for i, part in enumerate(partitioning.partitions):
        c = chosen.choices[i]
        entries.append(ScheduleEntry(i, part.start, c.freq_mhz, c.overlap, part.signature,
                                     part.label))
    t_sel, e_sel = chosen.time_s, chosen.energy_j
    schedule = Schedule(entries, trace_signature or partitioning.trace_signature,
                        device_name or profile.device.name, partitioning.num_kernels,
                        objective=chosen_sel.kind, predicted={
                            "time_s": t_sel, "energy_j": e_sel, "baseline_time_s": base_t,
                            "baseline_energy_j": base_e, "energy_scope": scope,
                            "source": profile.source, "objective_arg": chosen_sel.value,
                            "energy_saving": 1.0 - e_sel / base_e,
                            "slowdown": t_sel / base_t,
                            "search_passes": len(result.passes),
                            "pass_gains_rel": [p.gain_rel for p in result.passes[1:]]},
                        nanobatches=nanobatches)
    return frontier, schedule.validate()


def _rescore_on_profile(profile: Profile, parts, chosen, energy_includes_static) -> dict:
    """The selected point as the sampled frontiers claim it (predicted options at their
    predictions) and as the profile, which stood in for the device, has it."""
    static = 0.0 if energy_includes_static else profile.device.static_power_w
    truth = {(o.partition, o.freq_mhz, o.overlap): (o.time_s, o.energy_j + static * o.time_s)
             for o in profile.entries}
    predicted = 0
    t = e = 0.0
    for i, (c, fr) in enumerate(zip(chosen.choices, parts)):
        k = fr.options.index((c.freq_mhz, c.overlap))
        predicted += bool(fr.meta.get("predicted", [False] * len(fr))[k])
        t += truth[(i, c.freq_mhz, c.overlap)][0]
        e += truth[(i, c.freq_mhz, c.overlap)][1]
    return {"predicted_choices": predicted, "claimed_time_s": chosen.time_s,
            "claimed_energy_j": chosen.energy_j, "profile_time_s": t, "profile_energy_j": e}


def scored_points(time_s, energy_j, true_time_s, true_energy_j) -> tuple[np.ndarray, np.ndarray]:
    """What a frontier's points are worth when the truth is known: each at its true time and
    energy worsened by the error of the value the frontier claims for it, whichever way that
    errs (a measured point claims its truth; a predicted one errs by its prediction)."""
    true_t, true_e = np.asarray(true_time_s, float), np.asarray(true_energy_j, float)
    return (true_t + np.abs(np.asarray(time_s, float) - true_t),
            true_e + np.abs(np.asarray(energy_j, float) - true_e))


def sampled_frontiers(profile: Profile, exact: Sequence[PartitionFrontier], budget: float, *,
                      energy_includes_static: bool, seed: int = 0, predict: bool = True):
    """Each partition's frontier from the options the GP/EHVI search picks, ``budget`` of them
    (a fraction < 1 of the partition's options, at least ``MIN_SAMPLED``, or a count), with
    the profile answering each measurement (search/sampling.py). With ``predict`` the frontier
    also holds the unmeasured options the surrogates confidently place on it, at their
    predicted values (``frontier.meta["predicted"]``); partitions with too few measurements
    for a surrogate of their own (``sampling.borrows_shape``) go last and borrow the
    shape of their power-vs-clock curve from the others (transfer).

    The report, per partition, scores the returned frontier against the exhaustive one:
    - ``hv_frac``: hypervolume with the reference 10 % of the exhaustive frontier's span beyond
      its slowest time and largest energy (strict: only the frontier's own region counts);
      ``hv_space_frac``: reference the slowest and the dearest option (the whole option space).
      Every point counts at its true (profiled) time and energy, each made worse by its
      prediction's error (``scored_points``): a wrong prediction costs, whichever way it errs.
    - ``measured`` / ``measured_frac``: every option the search evaluated, start design included.
    - ``predicted`` (points on the frontier that were not measured) and ``pred_err_max``: the
      largest relative error, time or energy, of those points' predictions.
    - ``needed_99``: the fewest measurements with which a search that returns measured points
      only reaches 99 % of ``hv_frac``: the fewest exhaustive-frontier points that hold 99 % of
      its hypervolume, plus one per overlap choice with no point on that frontier."""
    from .partition_frontier import fewest_points_for, hypervolume  # noqa: PLC0415
    from .sampling import borrows_shape, clock_power_curves, sample_frontier  # noqa: PLC0415

    static = 0.0 if energy_includes_static else profile.device.static_power_w
    by_part = profile.by_partition()
    counts = [budget if budget >= 1 else max(MIN_SAMPLED, int(budget * len(opts) + 1e-9))
              for opts in by_part]
    kinds = [len({o.overlap for o in opts}) for opts in by_part]
    # partitions that can carry a surrogate of their own first: the rest borrow their shapes
    order = sorted(range(len(by_part)), key=lambda i: borrows_shape(counts[i], kinds[i]))
    results: dict[int, object] = {}
    shapes: list = []
    for i in order:
        opts = by_part[i]
        table = {(o.freq_mhz, o.overlap): (o.time_s, o.energy_j) for o in opts}
        results[i] = sample_frontier(list(table), lambda f, ov: table[(f, ov)], counts[i],
                                     partition=i, static_power_w=static, seed=seed,
                                     predict=predict, shapes=shapes)
        shapes = shapes + clock_power_curves(results[i])
    out, report = [], []
    for i, opts in enumerate(by_part):
        fr = results[i].frontier
        truth = {(o.freq_mhz, o.overlap): (o.time_s, o.energy_j + static * o.time_s)
                 for o in opts}
        true_t = np.array([truth[opt][0] for opt in fr.options])
        true_e = np.array([truth[opt][1] for opt in fr.options])
        score_t, score_e = scored_points(fr.time_s, fr.energy_j, true_t, true_e)
        pred = np.array(fr.meta.get("predicted", [False] * len(fr)), dtype=bool)
        err = np.maximum(np.abs(fr.time_s / true_t - 1), np.abs(fr.energy_j / true_e - 1))
        ex = exact[i]
        span_t, span_e = ex.time_s[-1] - ex.time_s[0], ex.energy_j[0] - ex.energy_j[-1]
        ref = (ex.time_s[-1] + 0.1 * span_t + 1e-12, ex.energy_j[0] + 0.1 * span_e + 1e-12)
        full = hypervolume(ex.time_s, ex.energy_j, ref)
        got = hypervolume(score_t, score_e, ref)
        # and against the whole option space (reference: the slowest and the dearest option)
        space = (max(t for t, _ in truth.values()) * (1 + 1e-9),
                 max(e for _, e in truth.values()) * (1 + 1e-9))
        full_s = hypervolume(ex.time_s, ex.energy_j, space)
        got_s = hypervolume(score_t, score_e, space)
        off_front = {o.overlap for o in opts} - {ov for _, ov in ex.options}
        out.append(fr)
        report.append({"partition": i, "options": len(opts), "measured": fr.num_measured,
                       "measured_frac": fr.num_measured / len(opts),
                       "method": results[i].meta["method"],
                       "hv_frac": got / full if full > 0 else 1.0,
                       "hv_space_frac": got_s / full_s if full_s > 0 else 1.0,
                       "predicted": int(pred.sum()),
                       "pred_err_max": float(err[pred].max()) if pred.any() else 0.0,
                       "needed_99": fewest_points_for(ex, ref, 0.99) + len(off_front)})
    return out, report
