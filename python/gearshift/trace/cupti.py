"""Kernel records from the native CUPTI launch hook -> KernelTrace (torch-free).

The native hook hands over one dict per kernel launch::

    {"ordinal": 17, "name": "sm90_xmma_gemm_bf16bf16_...", "stream": 7,
     "grid": [132, 1, 1], "block": [384, 1, 1], "timestamp": 1234567890123}

``timestamp`` is the launch time in nanoseconds (CUPTI's unit; ``timestamp_ns`` is accepted too,
and ``timestamp_s`` in seconds); ``duration_ns``/``end`` (ns), when the activity API measured the
kernel, become ``duration_s``. Optional ``phase`` and ``module`` keys are kept. NCCL kernels
become ``kind="comm"`` with their ``comm_op``. Ordinals must be 0..N-1 with none missing: the
runtime switches clocks at launch ordinals, so a trace with a gap would misplace every switch
after it.
"""

from __future__ import annotations

from ..errors import TraceError
from ..model import KernelRecord, KernelTrace
from ..model.trace import PHASES
from .kernels import nccl_comm_op

REQUIRED = ("ordinal", "name")


def _dims(rec: dict, key: str, i: int):
    v = rec.get(key)
    if v is None:
        return None
    if not (isinstance(v, (list, tuple)) and len(v) == 3 and
            all(isinstance(x, int) and x >= 1 for x in v)):
        raise TraceError(f"CUPTI record {i}: '{key}' is {v!r}, expected three positive integers",
                         "pass grid/block as [x, y, z]")
    return (v[0], v[1], v[2])


def _num(rec: dict, key: str, i: int) -> float | None:
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise TraceError(f"CUPTI record {i}: '{key}' is {v!r}, expected a non-negative number",
                         "pass times as numbers (ns)")
    return float(v)


def from_cupti_records(records, model: str = "", device: str = "",
                       meta: dict | None = None) -> KernelTrace:
    """Convert the native hook's records (an iterable of dicts) into a KernelTrace."""
    rows = list(records)
    if not rows:
        raise TraceError("the CUPTI record buffer is empty",
                         "record at least one training iteration with the launch hook enabled")
    kernels: dict[int, KernelRecord] = {}
    for i, rec in enumerate(rows):
        if not isinstance(rec, dict):
            raise TraceError(f"CUPTI record {i} is a {type(rec).__name__}, not a dict",
                             "pass one dict per kernel launch")
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise TraceError(f"CUPTI record {i} lacks {', '.join(missing)}",
                             "every record needs at least an ordinal and a kernel name")
        ordinal, name = rec["ordinal"], rec["name"]
        if isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 0:
            raise TraceError(f"CUPTI record {i}: ordinal {ordinal!r} is not a whole number >= 0",
                             "ordinals count launches from 0")
        if ordinal in kernels:
            raise TraceError(f"CUPTI records hold launch ordinal {ordinal} twice",
                             "record one iteration once (reset the hook's counter between "
                             "iterations)")
        ts_ns = _num(rec, "timestamp", i)
        ts_ns = _num(rec, "timestamp_ns", i) if ts_ns is None else ts_ns
        ts_s = ts_ns * 1e-9 if ts_ns is not None else _num(rec, "timestamp_s", i)
        dur_ns = _num(rec, "duration_ns", i)
        end_ns = _num(rec, "end", i)
        if dur_ns is None and end_ns is not None and ts_ns is not None:
            dur_ns = max(0.0, end_ns - ts_ns)
        comm_op = nccl_comm_op(str(name))
        phase = rec.get("phase", "forward")
        if phase not in PHASES:
            raise TraceError(f"CUPTI record {i}: phase '{phase}' is not one of "
                             f"{', '.join(PHASES)}", "leave phase out or use a known one")
        kernels[ordinal] = KernelRecord(
            name=str(name), kind="comm" if comm_op else "compute", phase=phase,
            module=str(rec.get("module", "")), op=str(rec.get("op", "")),
            stream=int(rec.get("stream", 0) or 0), comm_op=comm_op or "",
            grid=_dims(rec, "grid", i), block=_dims(rec, "block", i),
            duration_s=None if dur_ns is None else dur_ns * 1e-9, timestamp_s=ts_s)
    gaps = sorted(set(range(max(kernels) + 1)) - set(kernels))
    if gaps:
        raise TraceError(f"CUPTI records miss {len(gaps)} launch ordinal(s), first {gaps[:5]}",
                         "the record buffer overflowed or records were dropped: enlarge the "
                         "hook's buffer and record again")
    return KernelTrace([kernels[o] for o in range(len(kernels))], model=model, source="cupti",
                       device=device, meta=dict(meta or {})).validate()
