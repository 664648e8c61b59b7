"""Run a pipeline's dependency graph: iteration time (makespan) and energy.

The graph is compiled once per (order) into flat predecessor arrays in topological order; an
evaluation is then one pass over the ops (a tight loop over Python floats for one plan, or a
numpy pass over a batch of plans in ``PipelineGraph.makespans``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .order import INSTRUCTIONS, check_shape, parse_sequence, pipeline_order
from .plan import PipelinePlan
from .stage_profile import StageProfile


@dataclass
class PipelineResult:
    time_s: float                  # iteration time = makespan of the graph
    energy_j: float                # compute_energy_j + blocking_energy_j
    compute_energy_j: float        # sum of the computations' energies
    blocking_energy_j: float       # sum over stages of P_block x (time_s - busy_s[stage])
    start_s: np.ndarray            # (S, 2, N) start of every computation
    end_s: np.ndarray              # (S, 2, N)
    busy_s: np.ndarray             # (S,) time each stage computes
    source: str = "simulated"      # simulated | replayed: these figures are not measurements
    meta: dict = field(default_factory=dict)

    def line(self) -> str:
        """The CLI contract line."""
        return f"time_s={self.time_s!r} energy_j={self.energy_j!r}"


class PipelineGraph:
    """The dependency DAG of one per-stage program order, compiled for repeated evaluation."""

    def __init__(self, order: list[list[tuple[int, int]]]):
        stages = len(order)
        if stages < 1:
            raise ConfigError("the pipeline has no stages", "give at least one stage's sequence")
        counts = [[sum(1 for i, _ in seq if i == k) for k in (0, 1)] for seq in order]
        n = counts[0][0]
        for s, (nf, nb) in enumerate(counts):
            if nf != n or nb != n:
                raise ConfigError(
                    f"stage {s} runs {nf} forwards and {nb} backwards, stage 0 runs {n} of each",
                    "every stage must run one forward and one backward per microbatch")
            if sorted(m for i, m in order[s] if i == 0) != list(range(n)) or \
               sorted(m for i, m in order[s] if i == 1) != list(range(n)):
                raise ConfigError(f"stage {s} does not run microbatches 0..{n - 1} exactly once",
                                  "list each microbatch's forward and backward once per stage")
        check_shape(stages, n)
        self.stages, self.microbatches = stages, n
        self.order = order
        topo = self._topological(order)
        pos = {op: i for i, op in enumerate(topo)}
        self.num_ops = len(topo)
        self.op_stage = np.array([op[0] for op in topo], dtype=np.int64)
        self.op_instr = np.array([op[1] for op in topo], dtype=np.int64)
        self.op_mb = np.array([op[2] for op in topo], dtype=np.int64)
        # flat index of each op into an (S, 2, N) array
        self.op_flat = (self.op_stage * 2 + self.op_instr) * n + self.op_mb
        prev_of: dict = {}
        for seq_s, seq in enumerate(order):
            for j in range(1, len(seq)):
                prev_of[(seq_s,) + seq[j]] = (seq_s,) + seq[j - 1]
        self.prev = [pos[prev_of[op]] if op in prev_of else -1 for op in topo]
        self.cross = [pos[c] if c is not None else -1 for c in map(self._cross_pred, topo)]
        # only edges between stages pay the point-to-point transfer
        self.cross_is_p2p = [c >= 0 and self.op_stage[c] != op[0]
                             for c, op in zip(self.cross, topo)]

    def _cross_pred(self, op):
        s, k, m = op
        if k == 0:
            return (s - 1, 0, m) if s > 0 else None
        return (s + 1, 1, m) if s < self.stages - 1 else (s, 0, m)

    def _topological(self, order):
        done: set = set()
        ptr = [0] * len(order)
        out = []
        total = sum(len(q) for q in order)
        while len(out) < total:
            progressed = False
            for s, seq in enumerate(order):
                while ptr[s] < len(seq):
                    op = (s,) + seq[ptr[s]]
                    c = self._cross_pred(op)
                    if c is not None and c not in done:
                        break
                    done.add(op)
                    out.append(op)
                    ptr[s] += 1
                    progressed = True
            if not progressed:
                stuck = [f"stage {s}: {INSTRUCTIONS[order[s][ptr[s]][0]]} "
                         f"{order[s][ptr[s]][1]}" for s in range(len(order)) if ptr[s] < len(order[s])]
                raise ConfigError("the per-stage orders deadlock (each waits on another): " +
                                  "; ".join(stuck[:4]),
                                  "order each stage so a backward follows its own forward and "
                                  "forwards run in microbatch order")
        return out

    def schedule(self, time_s: np.ndarray, p2p_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (S, 2, N) of every computation for durations ``time_s`` (S, 2, N)."""
        dur = np.asarray(time_s, dtype=np.float64).reshape(-1)[self.op_flat].tolist()
        prev, cross, p2p = self.prev, self.cross, self.cross_is_p2p
        start = [0.0] * self.num_ops
        end = [0.0] * self.num_ops
        for i in range(self.num_ops):
            a = prev[i]
            t = end[a] if a >= 0 else 0.0
            b = cross[i]
            if b >= 0:
                tb = end[b] + p2p_s if p2p[i] else end[b]
                if tb > t:
                    t = tb
            start[i] = t
            end[i] = t + dur[i]
        shape = (self.stages, 2, self.microbatches)
        s_out = np.empty(self.num_ops)
        e_out = np.empty(self.num_ops)
        s_out[self.op_flat] = start
        e_out[self.op_flat] = end
        return s_out.reshape(shape), e_out.reshape(shape)

    def makespans(self, time_s: np.ndarray, p2p_s: float = 0.0) -> np.ndarray:
        """Iteration times of a batch of plans: ``time_s`` is (B, S, 2, N); returns (B,)."""
        t = np.asarray(time_s, dtype=np.float64)
        b = t.shape[0]
        dur = t.reshape(b, -1)[:, self.op_flat].T.copy()      # (ops, B), contiguous rows
        end = np.empty_like(dur)
        zero = np.zeros(b)
        for i in range(self.num_ops):
            a, c = self.prev[i], self.cross[i]
            st = end[a] if a >= 0 else zero
            if c >= 0:
                st = np.maximum(st, end[c] + p2p_s if self.cross_is_p2p[i] else end[c])
            np.add(st, dur[i], out=end[i])
        return end.max(axis=0)

    def run(self, time_s: np.ndarray, energy_j: np.ndarray, blocking_power_w,
            p2p_s: float = 0.0, source: str = "simulated") -> PipelineResult:
        time_s = np.asarray(time_s, dtype=np.float64)
        energy_j = np.asarray(energy_j, dtype=np.float64)
        start, end = self.schedule(time_s, p2p_s)
        makespan = float(end.max())
        busy = time_s.sum(axis=(1, 2))
        p_block = np.broadcast_to(np.asarray(blocking_power_w, dtype=np.float64), (self.stages,))
        if np.any(p_block < 0) or not np.all(np.isfinite(p_block)):
            raise ConfigError(f"blocking power {blocking_power_w} W is not a finite value >= 0",
                              "pass --blocking-power-w P with P >= 0")
        compute = float(energy_j.sum())
        blocking = float(np.sum(p_block * (makespan - busy)))
        return PipelineResult(makespan, compute + blocking, compute, blocking, start, end, busy,
                              source)


@functools.lru_cache(maxsize=64)
def graph_for(kind: str, stages: int, microbatches: int) -> PipelineGraph:
    return PipelineGraph(pipeline_order(kind, stages, microbatches))


def plan_arrays(profile: StageProfile, plan: PipelinePlan) -> tuple[np.ndarray, np.ndarray]:
    """Per-computation (time_s, energy_j), each (S, 2, N), of a plan under a profile."""
    idx = profile.freq_index(plan.freq_mhz)
    return (np.take_along_axis(profile.time_s, idx, axis=2),
            np.take_along_axis(profile.energy_j, idx, axis=2))


def execute(profile: StageProfile, plan: PipelinePlan, kind: str, stages: int, microbatches: int,
            blocking_power_w: float, p2p_s: float = 0.0) -> PipelineResult:
    """Iteration time and energy of ``plan`` on an S-stage ``kind`` pipeline of N microbatches."""
    check_shape(stages, microbatches)
    graph = graph_for(kind.lower(), int(stages), int(microbatches))
    plan.check(stages, microbatches, profile)
    t, e = plan_arrays(profile, plan)
    res = graph.run(t, e, blocking_power_w, p2p_s)
    res.meta.update(kind=kind.lower(), stages=stages, microbatches=microbatches)
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
    freq = np.zeros((graph.stages, 2, graph.microbatches), dtype=np.int64)
    for s, (seq, fs) in enumerate(zip(order, freqs_mhz)):
        if len(fs) != len(seq):
            raise ConfigError(f"stage {s} has {len(seq)} instructions but {len(fs)} clocks",
                              "give one clock per instruction of the sequence")
        for (k, m), f in zip(seq, fs):
            freq[s, k, m] = int(f)
    plan = PipelinePlan(freq, "sequences")
    t, e = plan_arrays(profile, plan)
    res = graph.run(t, e, blocking_power_w, p2p_s)
    res.meta.update(kind="sequences", stages=graph.stages, microbatches=graph.microbatches)
    return res
