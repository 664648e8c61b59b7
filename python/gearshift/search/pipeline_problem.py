"""A pipeline frequency-planning problem in the form the search works on.

With the iteration time T fixed, a plan's energy is
``sum_i e_i + P * (S*T - sum_i t_i) = P*S*T + sum_i c_i`` with ``c_i = e_i - P*t_i``: every
stage pays the blocking power P for every second of T it is not computing, so only the
*reduced cost* c of each computation matters at a given T. A clock whose (t, c) another clock
beats on both counts is never useful, so each (stage, instruction) keeps only its (t, c)-Pareto
clocks; along them time rises and reduced cost falls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, FormatError
from ..pipeline import INSTRUCTIONS, PipelinePlan, PipelineResult, StageProfile
from ..pipeline.executor import PipelineGraph, execute_graph, graph_for
from ..pipeline.order import check_kind, check_shape


@dataclass
class Options:
    """The useful clocks of one (stage, instruction), sorted by time (reduced cost falling)."""


    freq_index: np.ndarray     # indices into the profile's frequency axis
    time_s: np.ndarray
    cost_j: np.ndarray         # reduced cost e - P*t


@dataclass
class PipelineProblem:
    """``stages`` is the number of ranks (GPUs); with ``virtual_stages`` V each runs V model
    stages, and the profile has S x V stages (or S, split evenly: StageProfile.for_stages)."""

    profile: StageProfile
    kind: str
    stages: int
    microbatches: int
    blocking_power_w: float
    virtual_stages: int | None = None
    graph: PipelineGraph = field(init=False, repr=False)
    options: dict = field(init=False, repr=False)       # (stage, instr) -> Options

    def __post_init__(self):
        self.kind = check_kind(self.kind)
        check_shape(self.stages, self.microbatches)
        self.stages, self.microbatches = int(self.stages), int(self.microbatches)
        p = self.blocking_power_w
        if not (isinstance(p, (int, float)) and math.isfinite(p) and p >= 0):
            raise ConfigError(f"blocking power {p} W is not a finite value >= 0",
                              "pass --blocking-power-w P with P >= 0 (W of one stage)")
        self.graph = g = graph_for(self.kind, self.stages, self.microbatches,
                                   self.virtual_stages)
        self.virtual_stages = g.stages // g.ranks
        if self.profile.stages not in (g.stages, g.ranks):
            raise FormatError(self.profile.source or None, "stage",
                              f"the stage profile has {self.profile.stages} stages, the pipeline "
                              f"{self.stages}" + (f" ranks x {self.virtual_stages} virtual stages"
                                                  if self.virtual_stages > 1 else ""),
                              "pass --stages equal to the profile's stage count")
        check_profile(self.profile)
        # the profile the executor prices plans with: one row set per model stage, I/W too
        # where the schedule splits backwards
        self.profile = self.profile.for_stages(g.stages, g.stage_rank)
        if g.kinds == 4:
            self.profile = self.profile.with_split()
        cost = self.profile.energy_j - self.blocking_power_w * self.profile.time_s
        self.options = {}
        for s, k in sorted(set(zip(g.op_stage.tolist(), g.op_instr.tolist()))):
            keep = pareto_indices(self.profile.time_s[s, k], cost[s, k])
            self.options[(s, k)] = Options(keep, self.profile.time_s[s, k, keep],
                                           cost[s, k, keep])
        self.num_ops = g.num_ops
        self.op_key = list(zip(g.op_stage.tolist(), g.op_instr.tolist()))
        pair = g.op_stage * g.kinds + g.op_instr
        self.ops_of = {key: np.flatnonzero(pair == key[0] * g.kinds + key[1])
                       for key in self.options}
        # successors, for the backward (latest-start) passes
        succ: list[list[int]] = [[] for _ in range(g.num_ops)]
        for i in range(g.num_ops):
            for p in (g.prev[i], g.cross[i]):
                if p >= 0:
                    succ[p].append(i)
        self.succ = succ
        self.preds = [[p for p in (g.prev[i], g.cross[i]) if p >= 0] for i in range(g.num_ops)]
        # the option tables flat (table k = k-th key of ``options``), for vectorised look-ups
        # and the native sweeps: computation i's option j is entry option_base[i] + j
        table_of = {key: k for k, key in enumerate(self.options)}
        self.op_table = np.array([table_of[key] for key in self.op_key], dtype=np.int64)
        sizes = [len(o.time_s) for o in self.options.values()]
        self.option_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.option_time_s = np.concatenate([o.time_s for o in self.options.values()])
        self.option_cost_j = np.concatenate([o.cost_j for o in self.options.values()])
        self.option_freq_index = np.concatenate([o.freq_index for o in self.options.values()])
        self.option_energy_j = np.concatenate([self.profile.energy_j[s, k, o.freq_index]
                                               for (s, k), o in self.options.items()])
        self.option_base = self.option_start[self.op_table]

    # --- plans as per-op option indices (into each op's Options) -------------------------
    def fastest_choice(self) -> np.ndarray:
        return np.zeros(self.num_ops, dtype=np.int64)

    @property
    def ranks(self) -> int:
        """GPUs, each paying the blocking power while it waits."""
        return self.graph.ranks

    def allmax_plan(self) -> PipelinePlan:
        return PipelinePlan.uniform(self.graph.stages, self.microbatches,
                                    self.profile.max_freq_mhz, self.graph)

    def op_times(self, choice: np.ndarray) -> np.ndarray:
        return self.option_time_s[self.option_base + choice]

    def op_costs(self, choice: np.ndarray) -> np.ndarray:
        return self.option_cost_j[self.option_base + choice]

    def to_plan(self, choice: np.ndarray) -> PipelinePlan:
        fidx = self.option_freq_index[self.option_base + np.asarray(choice)]
        g = self.graph
        freq = np.zeros(g.stages * g.kinds * g.microbatches, dtype=np.int64)
        freq[g.op_flat] = self.profile.freqs_mhz[fidx]
        return PipelinePlan(freq.reshape(g.shape), "gearshift plan")

    def rescore(self, plan: PipelinePlan) -> PipelineResult:
        """The exact iteration time and energy of a plan, from the pipeline executor."""
        return execute_graph(self.profile, plan, self.graph, self.blocking_power_w)

    def rescore_choice(self, choice: np.ndarray) -> PipelineResult:
        """``rescore(to_plan(choice))`` without the plan's checks and clock look-ups: the
        executor's own run on the per-computation arrays it would build (the same numbers in
        the same places, so the same result bit for bit; tests/unit/test_pipeline_relaxation)."""
        g = self.graph
        at = self.option_base + np.asarray(choice)
        t = np.zeros(g.stages * g.kinds * g.microbatches)
        e = np.zeros_like(t)
        t[g.op_flat] = self.option_time_s[at]
        e[g.op_flat] = self.option_energy_j[at]
        res = g.run(t.reshape(g.shape), e.reshape(g.shape), self.blocking_power_w)
        res.meta.update(kind=g.kind, stages=g.ranks, microbatches=g.microbatches,
                        virtual_stages=g.stages // g.ranks)
        return res

    def makespan(self, durations: np.ndarray) -> float:
        """Iteration time with these per-computation durations (no transfer time)."""
        return float(self.graph.dag.earliest_finish(durations).max())


def pareto_indices(time_s: np.ndarray, cost_j: np.ndarray) -> np.ndarray:
    """Indices of the (time, cost)-Pareto points, sorted by time (cost strictly falling)."""
    order = np.lexsort((cost_j, time_s))
    keep, best = [], math.inf
    for i in order:
        if cost_j[i] < best:
            keep.append(int(i))
            best = cost_j[i]
    return np.array(keep, dtype=np.int64)


def lower_hull(time_s: np.ndarray, cost_j: np.ndarray) -> np.ndarray:
    """Positions (into the sorted Pareto arrays) of the lower convex hull's vertices."""
    h: list[int] = []
    for i in range(len(time_s)):
        while len(h) >= 2:
            a, b = h[-2], h[-1]
            if (cost_j[b] - cost_j[a]) * (time_s[i] - time_s[a]) >= \
               (cost_j[i] - cost_j[a]) * (time_s[b] - time_s[a]):
                h.pop()
            else:
                break
        h.append(i)
    return np.array(h, dtype=np.int64)


def check_profile(profile: StageProfile) -> None:
    """Refuse profiles a planner cannot trust: time must fall as the clock rises.

    Measured profiles are noisy (the A40 ones have local inversions of up to ~10%), so only a
    reversed trend is an error: a computation slower at the highest clock than at the lowest,
    which means swapped columns or a broken measurement.
    """
    t, e = profile.time_s, profile.energy_j
    if np.any(t <= 0) or np.any(e < 0) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(e))):
        raise FormatError(profile.source or None, "time/energy",
                          "has non-positive times or negative energies",
                          "re-measure: times are > 0 s and energies >= 0 J")
    if len(profile.freqs_mhz) < 2:
        return
    bad = np.argwhere(t[:, :, -1] > t[:, :, 0])
    if len(bad):
        s, k = (int(x) for x in bad[0])
        raise FormatError(profile.source or None, "time",
                          f"is not monotone: stage {s} {INSTRUCTIONS[k]} takes "
                          f"{t[s, k, -1]:.6g} s at {profile.max_freq_mhz} MHz but "
                          f"{t[s, k, 0]:.6g} s at {profile.min_freq_mhz} MHz",
                          "time must fall as the SM clock rises: check the frequency and time "
                          "columns, or re-measure that stage")
