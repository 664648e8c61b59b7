"""The partitioner: block-aligned cuts, comm partitions, minimum duration, stable signatures."""

from __future__ import annotations

import pytest

from gearshift.errors import ConfigError, FormatError
from gearshift.model import KernelRecord, KernelTrace, Partitioning
from gearshift.partition import default_min_partition_s, partition
from gearshift.partition.segments import block_and_part


def _block(k):
    return block_and_part(k.module)[0]


def _synthetic(layers=3, comm=False) -> KernelTrace:
    """A GPT-like sequence with module paths, as the op tracer writes it."""
    ks = []
    for phase, order in (("forward", range(layers)), ("backward", reversed(range(layers)))):
        for i in order:
            parts = [("ln_1", None), ("attn.qkv", 1e9), ("attn", 5e8), ("attn.proj", 3e8), ("", None),
                     ("ln_2", None), ("mlp.fc", 2e9), ("mlp.act", None), ("mlp.proj", 2e9), ("", None)]
            if phase == "backward":
                parts = parts[::-1]
            for part, flops in parts:
                mod = f"blocks.{i}" + (f".{part}" if part else "")
                if comm and part in ("attn.qkv", "mlp.fc") and phase == "forward":
                    ks.append(KernelRecord(f"allgather{i}", kind="comm", phase=phase, module=mod,
                                           comm_op="all_gather", comm_bytes=4e7))
                ks.append(KernelRecord(f"k.{part}", phase=phase, module=mod, flops=flops,
                                       bytes_read=1e7, bytes_written=1e7))
    ks.append(KernelRecord("adam", phase="optimizer", bytes_read=1e9, bytes_written=1e9))
    return KernelTrace(ks, model="synthetic", source="synthetic")


def test_partitions_line_up_with_blocks_attention_and_mlp():
    t = _synthetic()
    p = partition(t, min_partition_s=0)
    for part in p.partitions:
        blocks = {_block(k) for k in t.kernels[part.start:part.end]}
        assert len(blocks) == 1
    labels = [q.label for q in p.partitions]
    assert labels[:6] == ["blocks.0 fwd ln_1+attn", "blocks.0 fwd ln_2+mlp",
                          "blocks.1 fwd ln_1+attn", "blocks.1 fwd ln_2+mlp",
                          "blocks.2 fwd ln_1+attn", "blocks.2 fwd ln_2+mlp"]
    # backward: norms join the part whose gradient flows into them
    assert labels[6:8] == ["blocks.2 bwd mlp+ln_2", "blocks.2 bwd attn+ln_1"]
    assert labels[-1] == "top opt"
    assert len(p) == 3 * 2 * 2 + 1


def test_min_duration_merges_short_partitions_along_blocks():
    t = _synthetic(layers=6)
    fine = partition(t, min_partition_s=0)
    longest = max(q.expected_time_s for q in fine.partitions)
    p = partition(t, min_partition_s=2.5 * longest)
    assert len(p) < len(fine)
    assert set(p.boundaries()) <= set(fine.boundaries())   # merging only removes cuts
    assert all(q.expected_time_s >= 2.5 * longest for q in p.partitions[:-1])
    assert sum(q.expected_time_s for q in p.partitions) == pytest.approx(
        sum(q.expected_time_s for q in fine.partitions))


def test_default_minimum_comes_from_the_switch_latency():
    t = _synthetic()
    assert partition(t).min_partition_s == default_min_partition_s()
    assert partition(t, switch_latency_s=0.02).min_partition_s == default_min_partition_s(0.02)
    assert default_min_partition_s(0.02) == 2 * default_min_partition_s(0.01)


def test_comm_starts_a_partition_with_the_compute_it_overlaps():
    t = _synthetic(comm=True)
    p = partition(t, min_partition_s=0)
    comm_parts = [q for q in p.partitions if q.has_comm]
    assert len(comm_parts) == 2 * 3
    for q in comm_parts:
        ks = t.kernels[q.start:q.end]
        assert ks[0].kind == "comm" and sum(k.kind == "comm" for k in ks) == 1
        assert any(k.flops for k in ks[1:])            # the projection it overlaps with
    # a minimum above every part merges collectives too rather than leave switches that cannot
    # take effect; a minimum that compute-only neighbours can meet keeps them apart
    big = partition(t, min_partition_s=1.0)
    assert len(big) == 1 or all(q.expected_time_s >= 1.0 for q in big.partitions)
    assert sum(sum(k.kind == "comm" for k in t.kernels[q.start:q.end])
               for q in big.partitions) == 6


def test_signatures_are_stable_and_follow_the_model():
    a, b = partition(_synthetic()), partition(_synthetic())
    assert a.signature() == b.signature()
    assert [q.signature for q in a.partitions] == [q.signature for q in b.partitions]
    assert partition(_synthetic(layers=4)).signature() != a.signature()


def test_custom_time_estimator_and_kernel_strategy():
    t = KernelTrace([KernelRecord(f"k{i}") for i in range(100)], source="cupti")
    p = partition(t, min_partition_s=0.0095, time_estimator=lambda k: 0.001)
    assert p.strategy == "kernel"                      # no module paths: any kernel may cut
    assert all(q.num_kernels >= 10 for q in p.partitions)
    assert sum(q.num_kernels for q in p.partitions) == 100
    with pytest.raises(ConfigError, match="time estimator returned -1"):
        partition(t, time_estimator=lambda k: -1)


def test_round_trip_and_bad_input(tmp_path):
    t = _synthetic()
    p = partition(t)
    p.save(tmp_path / "p.json")
    back = Partitioning.load(tmp_path / "p.json")
    assert back.signature() == p.signature()
    back.check_trace(t)
    with pytest.raises(ConfigError, match="unknown partition strategy"):
        partition(t, strategy="blocks")
    with pytest.raises(ConfigError, match="negative"):
        partition(t, min_partition_s=-1)
    with pytest.raises(FormatError, match="the trace is empty"):
        partition(KernelTrace([]))


def test_block_and_part():
    assert block_and_part("blocks.3.attn.qkv") == ("blocks.3", "attn")
    assert block_and_part("layer2.1.conv2") == ("layer2.1", "conv2")
    assert block_and_part("blocks.3") == ("blocks.3", "")
    assert block_and_part("lm_head") == ("lm_head", "")
    assert block_and_part("") == ("", "")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_MODULES = ["", "wte", "blocks.0.ln_1", "blocks.0.attn.qkv", "blocks.0.mlp.fc", "blocks.1.attn",
            "blocks.1.mlp.proj", "loss"]


@st.composite
def _traces(draw):
    n = draw(st.integers(1, 60))
    phases = sorted(draw(st.lists(st.sampled_from(["forward", "backward", "optimizer"]),
                                  min_size=n, max_size=n)),
                    key=["forward", "backward", "optimizer"].index)
    ks = []
    for i, ph in enumerate(phases):
        comm = draw(st.booleans()) and draw(st.booleans())
        ks.append(KernelRecord(f"k{i % 7}", kind="comm" if comm else "compute", phase=ph,
                               module=draw(st.sampled_from(_MODULES)),
                               comm_op="all_gather" if comm else "",
                               comm_bytes=1e6 if comm else None,
                               flops=draw(st.sampled_from([None, 1e9, 1e11])),
                               bytes_read=1e6, bytes_written=1e6))
    return KernelTrace(ks, source="synthetic")


@settings(max_examples=150, deadline=None)
@given(_traces(), st.sampled_from([0.0, 1e-5, 1e-4, 1e-3]))
def test_partition_invariants(trace, min_s):
    p = partition(trace, min_partition_s=min_s)      # validate(): contiguous, covers every kernel
    fine = partition(trace, min_partition_s=0)
    assert set(p.boundaries()) <= set(fine.boundaries())
    if len(p) > 1:                                   # merging stops only when none is short
        assert all(q.expected_time_s >= min_s for q in p.partitions)
    if min_s == 0:                                   # cuts alone never join two collectives
        comm = [sum(k.kind == "comm" for k in trace.kernels[q.start:q.end]) for q in p.partitions]
        assert max(comm) <= 1
