"""A simulated iteration as Chrome trace events (open the file in Perfetto or chrome://tracing).

One complete event (``"ph": "X"``, ``ts``/``dur`` in microseconds from the iteration's start)
per kernel; ``pid`` is the GPU, ``tid`` the stream (0 compute, 1 communication), so each stream
of each GPU is one track. ``args``: ``id`` (the kernel's launch ordinal, unique), ``deps`` (the
ids of the kernels whose results it reads; null when the trace does not know), ``kind``
(``compute``/``comm``), ``nanobatch``, ``partition`` and ``freq_mhz`` (the clock its partition
runs at after the power limit; a partition a switch lands in runs partly at the old clock,
``requested_freq_mhz`` is what the schedule asked). The events span exactly the iteration.
"""

from __future__ import annotations

import json
from pathlib import Path

STREAM_NAMES = {0: "compute stream", 1: "communication stream"}


def timeline_events(trace, result, part_of, gpu: int = 0) -> list[dict]:
    """Chrome trace events of one IterationResult of ``trace`` (``part_of[i]``: kernel i's
    partition)."""
    streams = sorted({int(s) for s in result.kernel_stream})
    events: list[dict] = [{"name": "process_name", "ph": "M", "pid": gpu, "tid": 0,
                           "args": {"name": f"GPU {gpu}: {result.device} (simulated)"}}]
    for s in streams:
        events.append({"name": "thread_name", "ph": "M", "pid": gpu, "tid": s,
                       "args": {"name": STREAM_NAMES.get(s, f"stream {s}")}})
    for i, k in enumerate(trace.kernels):
        p = int(part_of[i])
        start_us = float(result.kernel_start_s[i]) * 1e6
        events.append({
            "name": k.name, "cat": k.kind, "ph": "X", "pid": gpu,
            "tid": int(result.kernel_stream[i]), "ts": start_us,
            "dur": float(result.kernel_end_s[i]) * 1e6 - start_us,
            "args": {"id": i, "deps": None if k.deps is None else list(k.deps),
                     "kind": k.kind, "nanobatch": k.nanobatch, "partition": p,
                     "freq_mhz": int(result.partition_eff_freq_mhz[p]),
                     "requested_freq_mhz": int(result.partition_freq_mhz[p]),
                     "phase": k.phase, "module": k.module}})
    return events


def write_chrome_trace(path: str | Path, trace, result, part_of, gpu: int = 0) -> None:
    doc = {"traceEvents": timeline_events(trace, result, part_of, gpu),
           "displayTimeUnit": "ms",
           "otherData": {"source": result.source, "energy_scope": result.energy_scope,
                         "device": result.device, "time_s": result.time_s,
                         "energy_j": result.energy_j, "model": trace.model,
                         "nanobatches": trace.nanobatches}}
    Path(path).write_text(json.dumps(doc))
