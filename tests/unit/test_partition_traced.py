"""Partitioning real traces of the zoo: GPT-1.3B in seconds, aligned with its blocks."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from gearshift.partition import partition  # noqa: E402
from gearshift.partition.segments import block_and_part  # noqa: E402
from gearshift.trace import trace_preset  # noqa: E402


@pytest.fixture(scope="module")
def gpt13():
    return trace_preset("gpt-1.3b")


def test_gpt_1_3b_partitions_line_up_with_its_blocks(gpt13):
    layers = gpt13.meta["config"]["layers"]
    fine = partition(gpt13, min_partition_s=0)
    blocks = [q for q in fine.partitions if q.label.startswith("blocks.")]
    assert len(blocks) == layers * 2 * 2                # fwd/bwd x attention/MLP per block
    for q in blocks:
        assert len({block_and_part(k.module)[0] for k in gpt13.kernels[q.start:q.end]}) == 1
    assert [q.label.split()[2] for q in blocks[:4]] == ["ln_1+attn", "ln_2+mlp"] * 2
    coarse = partition(gpt13)                           # default: merged to >= 2 switch latencies
    assert 5 < len(coarse) < len(fine)
    assert set(coarse.boundaries()) <= set(fine.boundaries())
    short = [q for q in coarse.partitions if q.expected_time_s < coarse.min_partition_s]
    assert not short


def test_same_model_same_partitions(gpt13):
    again = trace_preset("gpt-1.3b")
    assert partition(again).signature() == partition(gpt13).signature()


def test_tensor_parallel_partitions_pair_collectives_with_compute():
    t = trace_preset("gpt-tiny-tp2")
    p = partition(t, min_partition_s=0)
    comm = [q for q in p.partitions if q.has_comm]
    assert len(comm) == sum(k.kind == "comm" for k in t.kernels)
    qkv = [q for q in comm if t.kernels[q.start].comm_op == "all_gather"
           and any(k.module.endswith("attn.qkv") for k in t.kernels[q.start:q.end])]
    assert len(qkv) == 2 * t.meta["config"]["layers"]   # "all-gather + qkv projection", fwd+bwd
