"""Run a pipeline's dependency graph: iteration time (makespan) and energy.

The graph is compiled once per (order) into flat predecessor arrays in topological order; an
evaluation is then one native pass over the ops (gearshift._C.PipelineDag, csrc/pipeline).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .order import (B, F, I, INSTRUCTIONS, W, ScheduleOrder, check_shape, data_pred,
                    order_from_sequences, parse_sequence, schedule_order)
from .plan import PipelinePlan
from .stage_profile import StageProfile


@dataclass
class PipelineResult:
    time_s: float                  # iteration time = makespan of the graph
    energy_j: float                # compute_energy_j + blocking_energy_j
    compute_energy_j: float        # sum of the computations' energies
    blocking_energy_j: float       # sum over stages of P_block x (time_s - busy_s[stage])
    start_s: np.ndarray            # (S, K, N) start of every computation (K: graph.kinds)
    end_s: np.ndarray              # (S, K, N)
    busy_s: np.ndarray             # (R,) time each rank computes (R = S without virtual stages)
    source: str = "simulated"      # simulated | replayed: these figures are not measurements
    meta: dict = field(default_factory=dict)

    def line(self) -> str:
        """The CLI contract line."""
        return f"time_s={self.time_s!r} energy_j={self.energy_j!r}"


class PipelineGraph:
    """The dependency DAG of one schedule's per-rank program orders, compiled for repeated
    evaluation. ``order`` is a ScheduleOrder, or (legacy) one ``(instruction, microbatch)`` list
    per stage, each stage on its own rank.

    Arrays of per-computation values are ``(stages, K, microbatches)``: K = 2 (F, B) for
    schedules without split backwards, 4 (F, B, I, W) otherwise; cells a schedule does not run
    (e.g. B where it runs I and W) stay 0."""

    def __init__(self, order):
        so = order if isinstance(order, ScheduleOrder) else order_from_sequences(order)
        if so.ranks < 1 or so.stages < 1:
            raise ConfigError("the pipeline has no stages", "give at least one stage's sequence")
        n = so.microbatches
        check_shape(so.stages, n)
        self.order = so
        self.kind = so.kind
        self.stages, self.ranks, self.microbatches = so.stages, so.ranks, n
        self.kinds = 4 if so.split_backward else 2
        self.stage_rank = np.array(so.stage_rank, dtype=np.int64)
        self._check_complete(so)
        grad = {(s, m): k for ops in so.rank_ops for s, k, m in ops if k in (B, I)}
        topo = self._topological(so, grad)
        pos = {op: i for i, op in enumerate(topo)}
        self.num_ops = len(topo)
        self.op_stage = np.array([op[0] for op in topo], dtype=np.int64)
        self.op_instr = np.array([op[1] for op in topo], dtype=np.int64)
        self.op_mb = np.array([op[2] for op in topo], dtype=np.int64)
        self.op_rank = self.stage_rank[self.op_stage]
        # flat index of each op into a (S, K, N) array
        self.op_flat = (self.op_stage * self.kinds + self.op_instr) * n + self.op_mb
        prev_of: dict = {}
        for ops in so.rank_ops:
            for j in range(1, len(ops)):
                prev_of[ops[j]] = ops[j - 1]
        self.prev = [pos[prev_of[op]] if op in prev_of else -1 for op in topo]
        cross = [data_pred(op, self.stages, lambda s, m: grad[(s, m)]) for op in topo]
        # an edge the program order already implies adds nothing
        self.cross = [pos[c] if c is not None and pos[c] != p else -1
                      for c, p in zip(cross, self.prev)]
        # only edges between ranks pay the point-to-point transfer
        self.cross_is_p2p = [c >= 0 and self.op_rank[c] != self.op_rank[i]
                             for i, c in enumerate(self.cross)]

    @functools.cached_property
    def dag(self):
        """The native DAG (csrc/pipeline/sweeps.h): schedules and the planner's sweeps."""
        from .._native import native

        return native().PipelineDag(np.array(self.prev, dtype=np.int64),
                                    np.array(self.cross, dtype=np.int64),
                                    np.array(self.cross_is_p2p, dtype=bool))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.stages, self.kinds, self.microbatches)

    def used(self) -> np.ndarray:
        """Mask (S, K, N) of the cells this schedule runs."""
        mask = np.zeros(self.stages * self.kinds * self.microbatches, dtype=bool)
        mask[self.op_flat] = True
        return mask.reshape(self.shape)

    def rank_busy(self, time_s: np.ndarray) -> np.ndarray:
        """Seconds each rank computes, for durations (S, K, N)."""
        per_stage = np.asarray(time_s, dtype=np.float64).sum(axis=(1, 2))
        return np.bincount(self.stage_rank, weights=per_stage, minlength=self.ranks)

    @staticmethod
    def _check_complete(so: ScheduleOrder) -> None:
        n = so.microbatches
        seen: dict = {}
        for r, ops in enumerate(so.rank_ops):
            for s, k, m in ops:
                if not (0 <= s < so.stages) or so.stage_rank[s] != r:
                    raise ConfigError(f"rank {r} runs {INSTRUCTIONS[k]} of stage {s}, which it "
                                      "does not hold", "run each stage's ops on its own rank")
                seen[(s, k, m)] = seen.get((s, k, m), 0) + 1
        bad = []
        for s in range(so.stages):
            for m in range(n):
                f, b, i, w = (seen.pop((s, k, m), 0) for k in (F, B, I, W))
                if f != 1 or not ((b, i, w) == (1, 0, 0) or (b, i, w) == (0, 1, 1)):
                    bad.append((s, m))
        if bad or seen:
            s, m = bad[0] if bad else next(iter(seen))[::2]
            raise ConfigError(
                f"stage {s} does not run microbatch {m} once (one forward, and one backward or "
                f"one backward-input and one backward-weight; microbatches 0..{n - 1})",
                "list each microbatch's forward and backward (B, or I then W) once per stage")

    def _topological(self, so: ScheduleOrder, grad):
        done: set = set()
        ptr = [0] * so.ranks
        out = []
        total = sum(len(q) for q in so.rank_ops)
        while len(out) < total:
            progressed = False
            for r, seq in enumerate(so.rank_ops):
                while ptr[r] < len(seq):
                    op = seq[ptr[r]]
                    c = data_pred(op, so.stages, lambda s, m: grad.get((s, m), B))
                    if c is not None and c not in done:
                        break
                    done.add(op)
                    out.append(op)
                    ptr[r] += 1
                    progressed = True
            if not progressed:
                stuck = [f"rank {r}: stage {seq[ptr[r]][0]} {INSTRUCTIONS[seq[ptr[r]][1]]} "
                         f"{seq[ptr[r]][2]}" for r, seq in enumerate(so.rank_ops)
                         if ptr[r] < len(seq)]
                raise ConfigError("the per-stage orders deadlock (each waits on another): " +
                                  "; ".join(stuck[:4]),
                                  "order each stage so a backward follows its own forward and "
                                  "forwards run in microbatch order")
        return out

    def schedule(self, time_s: np.ndarray, p2p_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (S, K, N) of every computation for durations ``time_s`` (S, K, N)."""
        dur = np.asarray(time_s, dtype=np.float64).reshape(-1)[self.op_flat]
        start, end = self.dag.schedule(dur, p2p_s)
        size = self.stages * self.kinds * self.microbatches
        s_out = np.zeros(size)
        e_out = np.zeros(size)
        s_out[self.op_flat] = start
        e_out[self.op_flat] = end
        return s_out.reshape(self.shape), e_out.reshape(self.shape)

    def makespans(self, time_s: np.ndarray, p2p_s: float = 0.0) -> np.ndarray:
        """Iteration times of a batch of plans: ``time_s`` is (B, S, K, N); returns (B,)."""
        t = np.asarray(time_s, dtype=np.float64)
        dur = t.reshape(t.shape[0], -1)[:, self.op_flat]
        return np.array([self.dag.schedule(d, p2p_s)[1].max() for d in dur])

    def run(self, time_s: np.ndarray, energy_j: np.ndarray, blocking_power_w,
            p2p_s: float = 0.0, source: str = "simulated") -> PipelineResult:
        time_s = np.asarray(time_s, dtype=np.float64)
        energy_j = np.asarray(energy_j, dtype=np.float64)
        start, end = self.schedule(time_s, p2p_s)
        makespan = float(end.max())
        busy = self.rank_busy(time_s)
        p_block = np.broadcast_to(np.asarray(blocking_power_w, dtype=np.float64), (self.ranks,))
        if np.any(p_block < 0) or not np.all(np.isfinite(p_block)):
            raise ConfigError(f"blocking power {blocking_power_w} W is not a finite value >= 0",
                              "pass --blocking-power-w P with P >= 0")
        compute = float(energy_j.sum())
        blocking = float(np.sum(p_block * (makespan - busy)))
        return PipelineResult(makespan, compute + blocking, compute, blocking, start, end, busy,
                              source)


@functools.lru_cache(maxsize=64)
def graph_for(kind: str, stages: int, microbatches: int,
              virtual_stages: int | None = None) -> PipelineGraph:
    """The graph of ``kind`` on ``stages`` ranks (``virtual_stages`` model stages each)."""
    return PipelineGraph(schedule_order(kind, stages, microbatches, virtual_stages))


def plan_arrays(profile: StageProfile, plan: PipelinePlan,
                graph: PipelineGraph | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-computation (time_s, energy_j), each shaped like the plan (S, K, N); cells the
    schedule does not run (clock 0) are 0. A K=4 plan prices I and W from the profile's split
    (measured, or derived: see StageProfile.with_split)."""
    freq = plan.freq_mhz
    k = freq.shape[1]
    prof = profile.with_split() if k > profile.time_s.shape[1] else profile
    used = freq > 0 if graph is None else graph.used()
    idx = np.zeros(freq.shape, dtype=np.int64)
    idx[used] = prof.freq_index(freq[used])
    t = np.take_along_axis(prof.time_s[:, :k], idx, axis=2)
    e = np.take_along_axis(prof.energy_j[:, :k], idx, axis=2)
    return np.where(used, t, 0.0), np.where(used, e, 0.0)


def execute(profile: StageProfile, plan: PipelinePlan, kind: str, stages: int, microbatches: int,
            blocking_power_w: float, p2p_s: float = 0.0,
            virtual_stages: int | None = None) -> PipelineResult:
    """Iteration time and energy of ``plan`` on a ``kind`` pipeline of ``stages`` ranks
    (``virtual_stages`` model stages each) and N microbatches."""
    check_shape(stages, microbatches)
    graph = graph_for(kind.lower(), int(stages), int(microbatches), virtual_stages)
    return execute_graph(profile, plan, graph, blocking_power_w, p2p_s)


def execute_graph(profile: StageProfile, plan: PipelinePlan, graph: PipelineGraph,
                  blocking_power_w: float, p2p_s: float = 0.0) -> PipelineResult:
    """``execute`` on a built graph; a profile of one row set per rank is split over its
    virtual stages (StageProfile.for_stages)."""
    profile = profile.for_stages(graph.stages, graph.stage_rank)
    plan.check(graph.stages, graph.microbatches, profile, graph)
    t, e = plan_arrays(profile, plan, graph)
    res = graph.run(t, e, blocking_power_w, p2p_s)
    res.meta.update(kind=graph.kind, stages=graph.ranks, microbatches=graph.microbatches,
                    virtual_stages=graph.stages // graph.ranks)
    return res


def execute_sequences(profile: StageProfile, sequences, freqs_mhz, blocking_power_w: float,
                      p2p_s: float = 0.0) -> PipelineResult:
    """Run explicit per-stage orders (``"FFBFB..."`` strings or (instr, mb) lists) with the clock
    of every op in that order (``freqs_mhz[s][j]`` for the j-th op of stage s)."""
    order = [parse_sequence(q) if isinstance(q, str) else [tuple(x) for x in q] for q in sequences]
    graph = PipelineGraph(order)
    if len(freqs_mhz) != graph.stages:
        raise ConfigError(f"{len(freqs_mhz)} frequency lists for {graph.stages} stages",
                          "give one frequency list per stage")
    if profile.stages != graph.stages:
        raise ConfigError(f"the stage profile has {profile.stages} stages, the sequences "
                          f"{graph.stages}", "use the profile of this pipeline")
    freq = np.zeros(graph.shape, dtype=np.int64)
    for s, (seq, fs) in enumerate(zip(order, freqs_mhz)):
        if len(fs) != len(seq):
            raise ConfigError(f"stage {s} has {len(seq)} instructions but {len(fs)} clocks",
                              "give one clock per instruction of the sequence")
        for (k, m), f in zip(seq, fs):
            freq[s, k, m] = int(f)
    plan = PipelinePlan(freq, "sequences")
    t, e = plan_arrays(profile, plan, graph)
    res = graph.run(t, e, blocking_power_w, p2p_s)
    res.meta.update(kind="sequences", stages=graph.stages, microbatches=graph.microbatches)
    return res
