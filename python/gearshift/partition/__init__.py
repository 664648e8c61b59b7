"""KernelTrace -> Partitioning: runs of kernels worth one clock setting each.

``partition(trace)`` cuts the kernel sequence where the model's structure changes and around
communication, then merges partitions too short to be worth a clock switch:

1. module boundaries (``module``): a cut wherever (phase, block, part) changes, so each
   transformer block's forward and backward split into attention and MLP. Parts without
   FLOP-counted work (layer norms, residual adds) join the part they feed: the next one in the
   forward pass, the previous one in the backward pass (where their gradient is computed after
   it). A block with no such work stays one partition.
2. communication boundaries (``comm``): a cut before every communication kernel, so a collective
   and the compute that follows it (what it can overlap with, e.g. an all-gather and the QKV
   projection) form one partition.
3. minimum duration: partitions shorter than ``min_partition_s`` are merged, shortest first, into
   a neighbour: one that adds no second collective if there is one, then the one that shares
   their phase and block, then the shorter one. So no switch is
   planned that lasts longer than a good part of what it switches. By default
   ``min_partition_s = MIN_PARTITION_SWITCHES x switch_latency_s`` of the device.

``auto`` uses module + comm cuts when the trace knows module paths (op-level traces), and
otherwise (CUPTI traces) considers a cut at every kernel and lets the merger size partitions.
Cuts fall at the same kernels for the same model, so partition signatures are stable across
iterations and traces and change when the model does.
"""

from __future__ import annotations

import heapq
from typing import Callable

from ..errors import ConfigError
from ..model import KernelRecord, KernelTrace, Partitioning
from .estimate import DEFAULT_ESTIMATOR, Roofline
from .segments import Segment, block_and_part, runs

STRATEGIES = ("auto", "module+comm", "module", "comm", "kernel")
# Published clock-switch latencies are milliseconds (the simulator's H100 preset: 5 ms).
DEFAULT_SWITCH_LATENCY_S = 0.005
# A partition lasts at least this many switch latencies, so its clock holds for most of it.
MIN_PARTITION_SWITCHES = 2.0


def default_min_partition_s(switch_latency_s: float | None = None) -> float:
    lat = DEFAULT_SWITCH_LATENCY_S if switch_latency_s is None else switch_latency_s
    return MIN_PARTITION_SWITCHES * lat


def partition(trace: KernelTrace, strategy: str = "auto", min_partition_s: float | None = None,
              time_estimator: Callable[[KernelRecord], float] | None = None,
              switch_latency_s: float | None = None) -> Partitioning:
    """Partition ``trace``; see the module docstring for the strategies."""
    trace.validate()
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown partition strategy '{strategy}'",
                          f"use one of {', '.join(STRATEGIES)}")
    if min_partition_s is None:
        min_partition_s = default_min_partition_s(switch_latency_s)
    if min_partition_s < 0:
        raise ConfigError(f"min_partition_s {min_partition_s} is negative", "use a value >= 0")
    est = time_estimator or DEFAULT_ESTIMATOR
    times = [_time(est, k, i) for i, k in enumerate(trace.kernels)]
    if strategy == "auto":
        strategy = "module+comm" if any(k.module for k in trace.kernels) else "kernel"

    kernels = trace.kernels
    n = len(kernels)
    if strategy == "kernel":
        cut = [True] * n
    else:
        cut = [False] * n
        if "module" in strategy:
            for s in _absorb_light(runs(trace, times, _key_changes(trace))):
                cut[s.start] = True
        if "comm" in strategy:
            for i, k in enumerate(kernels):
                cut[i] = cut[i] or k.kind == "comm"
    segs = _merge_short(runs(trace, times, cut), min_partition_s)
    out = Partitioning.from_cuts(trace, [s.start for s in segs], [s.label() for s in segs],
                                 strategy=strategy, min_partition_s=min_partition_s)
    for p, s in zip(out.partitions, segs):
        p.expected_time_s = s.time_s
    out.extra = {"expected_iteration_s": sum(times),
                 "estimator": type(est).__name__ if isinstance(est, Roofline) else
                 getattr(est, "__name__", type(est).__name__)}
    return out


def _time(est, k: KernelRecord, i: int) -> float:
    t = est(k)
    if not (isinstance(t, (int, float)) and t >= 0):
        raise ConfigError(f"the time estimator returned {t!r} for kernel {i} ({k.name})",
                          "return a non-negative number of seconds for every kernel")
    return float(t)


def _key_changes(trace: KernelTrace) -> list[bool]:
    out, prev = [], None
    for k in trace.kernels:
        key = (k.phase, *block_and_part(k.module))
        out.append(key != prev)
        prev = key
    return out


def _absorb_light(segs: list[Segment]) -> list[Segment]:
    """Join the light parts of each (phase, block) run to its heavy parts (see docstring)."""
    out: list[Segment] = []
    i = 0
    while i < len(segs):
        j = i
        while j < len(segs) and segs[j].phase == segs[i].phase and segs[j].block == segs[i].block:
            j += 1
        group = segs[i:j]
        anchors = [g for g in group if g.heavy or g.comm_ops]
        if not anchors:
            merged = group[0]
            for g in group[1:]:
                merged = merged.joined(g)
            out.append(merged)
        else:
            out.extend(_attach(group, backward=group[0].phase == "backward"))
        i = j
    return out


def _attach(group: list[Segment], backward: bool) -> list[Segment]:
    order = group[::-1] if backward else group   # lights join the anchor they feed
    result: list[Segment] = []
    pending: Segment | None = None
    for g in order:
        if g.heavy or g.comm_ops:
            result.append(g.joined(pending) if pending else g)
            pending = None
        else:
            pending = pending.joined(g) if pending else g
    if pending is not None:                      # trailing lights join the last anchor
        result[-1] = result[-1].joined(pending)
    return sorted(result, key=lambda s: s.start)


def _merge_short(segs: list[Segment], min_s: float) -> list[Segment]:
    """Merge segments shorter than ``min_s``, shortest first, until none is short.

    Joining two collectives is the last resort, but it is taken: in a tensor-parallel model every
    part of every block holds a collective, and a partition much shorter than the clock-switch
    latency would run at the previous partition's clock anyway (the profile's overlap choice then
    applies to each collective of the partition)."""
    if min_s <= 0 or len(segs) < 2:
        return segs
    alive: dict[int, Segment] = dict(enumerate(segs))
    n = len(segs)
    left = {i: (i - 1 if i > 0 else None) for i in range(n)}
    right = {i: (i + 1 if i < n - 1 else None) for i in range(n)}
    heap = [(s.time_s, s.start, i) for i, s in alive.items() if s.time_s < min_s]
    heapq.heapify(heap)
    next_id = n
    while heap:
        _, _, i = heapq.heappop(heap)
        if i not in alive:  # merged away since it was queued
            continue
        s = alive[i]
        best, best_score = None, None
        for j in (left[i], right[i]):
            nb = alive.get(j)
            if nb is None:
                continue
            score = (not (s.comm_ops and nb.comm_ops), nb.phase == s.phase,
                     bool(set(nb.blocks) & set(s.blocks)), -nb.time_s)
            if best_score is None or score > best_score:
                best, best_score = j, score
        if best is None:
            continue                               # the only segment left
        nb = alive.pop(best)
        del alive[i]
        merged = s.joined(nb)
        k = next_id
        next_id += 1
        lo, hi = (i, best) if s.start < nb.start else (best, i)
        left[k], right[k] = left[lo], right[hi]
        if left[k] in alive:
            right[left[k]] = k
        if right[k] in alive:
            left[right[k]] = k
        alive[k] = merged
        if merged.time_s < min_s:
            heapq.heappush(heap, (merged.time_s, merged.start, k))
    return sorted(alive.values(), key=lambda s: s.start)


__all__ = ["DEFAULT_SWITCH_LATENCY_S", "MIN_PARTITION_SWITCHES", "Roofline", "STRATEGIES",
           "default_min_partition_s", "partition"]
