"""CUPTI launch records -> KernelTrace, and what gearshift.trace may import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gearshift.errors import TraceError
from gearshift.partition import partition
from gearshift.trace import from_cupti_records


def _records():
    names = ["ampere_bf16_gemm_128x128", "ncclDevKernel_AllGather_RING_LL",
             "vectorized_elementwise_kernel", "ncclKernel_ReduceScatter_RING_LL_Sum_bf16"]
    return [{"ordinal": i, "name": n, "stream": 7 if "nccl" in n else 0, "grid": [132, 1, 1],
             "block": [256, 1, 1], "timestamp": 1_000_000 + 10_000 * i,
             "end": 1_000_000 + 10_000 * i + 8_000} for i, n in enumerate(names)]


def test_records_become_a_trace():
    t = from_cupti_records(reversed(_records()), model="gpt", device="H100")
    assert t.source == "cupti" and len(t) == 4
    assert [k.kind for k in t.kernels] == ["compute", "comm", "compute", "comm"]
    assert [k.comm_op for k in t.kernels] == ["", "all_gather", "", "reduce_scatter"]
    k = t.kernels[1]
    assert k.stream == 7 and k.grid == (132, 1, 1) and k.block == (256, 1, 1)
    assert k.timestamp_s == pytest.approx(1.01e-3) and k.duration_s == pytest.approx(8e-6)
    # measured durations drive partition sizes
    p = partition(t, min_partition_s=15e-6)
    assert sum(q.expected_time_s for q in p.partitions) == pytest.approx(32e-6)
    assert all(q.num_kernels == 2 for q in p.partitions)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop(2), "miss 1 launch ordinal"),
    (lambda r: r.append(dict(r[0])), "ordinal 0 twice"),
    (lambda r: r[0].pop("name"), "lacks name"),
    (lambda r: r[1].update(grid=[1, 2]), "'grid'"),
    (lambda r: r[1].update(ordinal=-1), "ordinal -1"),
    (lambda r: r[1].update(timestamp="soon"), "'timestamp'"),
    (lambda r: r.clear(), "buffer is empty"),
])
def test_bad_records(mutate, message):
    r = _records()
    mutate(r)
    with pytest.raises(TraceError, match=message):
        from_cupti_records(r)


PROBE = r"""
import json, sys
import gearshift.trace, gearshift.trace.cupti, gearshift.trace.kernels, gearshift.partition
import gearshift.cli.trace, gearshift.cli.partition
print(json.dumps([m for m in ('torch', 'numpy', 'pandas') if m in sys.modules]))
"""


def test_trace_and_partition_import_without_torch():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert "torch" not in json.loads(out.stdout)


def test_mangled_nccl_symbols_are_collectives():
    # CUPTI's launch callbacks name kernels by their mangled symbol (as seen on an H200 with
    # torch 2.11: "_ZN2at6native24vectorized_gather_kernel..."); NCCL's kernels are C++ too
    from gearshift.trace.cupti import from_cupti_records

    def mangled(name, args="24ncclDevKernelArgsStorageILm4096EE"):
        return f"_Z{len(name)}{name}{args}"

    recs = [{"ordinal": 0, "name": "_ZN2at6native24vectorized_gather_kernelILi16ElEEvPcS2_PT0_illllb"},
            {"ordinal": 1, "name": mangled("ncclDevKernel_AllReduce_Sum_bf16_RING_LL")},
            {"ordinal": 2, "name": mangled("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL")},
            {"ordinal": 3, "name": "_Z3foov"}]
    t = from_cupti_records(recs)
    assert [k.kind for k in t.kernels] == ["compute", "comm", "comm", "compute"]
    assert [k.comm_op or None for k in t.kernels] == [None, "all_reduce", "reduce_scatter", None]
