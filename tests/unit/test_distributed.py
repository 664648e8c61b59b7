"""Data parallel with 2 gloo ranks on CPU (torchrun): DDP either way round and FSDP2; the
collectives are in the trace, the ranks plan once and agree, a failure on one rank is a
fallback on both, and training is unchanged."""

import json
from pathlib import Path

import pytest
from _spawn import torchrun

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORKER = Path(__file__).with_name("_ddp_worker.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torchrun(WORKER, 2, [out])
    return out, [json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1)]


@pytest.mark.parametrize("case", ["ddp_then_compile", "compile_then_ddp"])
def test_ddp_either_way_round(ranks, case):
    out, res = ranks
    for rank in res:
        r = rank[case]
        assert r["status"]["phase"] == "enforce" and r["status"]["iterations"] == 2
        assert r["comm_ops"] == ["all_reduce"] and r["comm_phases"] == ["backward"]
        assert r["world_size"] == 2
        assert r["comm_have_deps"] and r["comm_awaited"]
        # the gradients all-reduced are exactly the parameters (fp32): 16*256+256 + ...
        n_params = 16 * 256 + 256 + 256 * 256 + 256 + 256 * 4 + 4
        assert r["comm_bytes"] == 4 * n_params
        assert r["losses"] == pytest.approx(rank["eager_losses"], abs=1e-6)
        assert "planned on rank 0" in r["status"]["explanation"]
    # one plan for the job: the same schedule on both ranks, one file for the one role
    assert res[0][case]["schedule"] == res[1][case]["schedule"]
    name = "a.json" if case == "ddp_then_compile" else "b.json"
    assert json.loads((out / name).read_text())["entries"] == res[0][case]["schedule"]["entries"]
    assert not list(out.glob("*.role*.json"))


def test_a_failure_on_one_rank_is_a_fallback_on_both(ranks):
    _, res = ranks
    for i, rank in enumerate(res):
        r = rank["one_rank_fails"]
        assert r["status"]["phase"] == "fallback"
        assert "tracing on rank 1 failed" in r["status"]["fallback_reason"]
        assert r["losses"] == pytest.approx(rank["eager_losses"], abs=1e-6)
        assert len(r["warnings"]) == 1 and f"[rank {i}/2, local GPU {i}]" in r["warnings"][0]


def test_a_device_failing_on_one_rank_does_not_hang_the_others(ranks):
    _, res = ranks
    for rank in res:
        r = rank["device_fails_on_rank1"]
        assert r["status"]["phase"] == "fallback"
        assert "no device on rank 1" in r["status"]["fallback_reason"]
        assert r["losses"] == pytest.approx(rank["eager_losses"], abs=1e-6)


@pytest.mark.parametrize("case", ["fsdp", "compile_then_fsdp"])
def test_fsdp2_collectives_are_traced(ranks, case):
    _, res = ranks
    for rank in res:
        assert "error" not in rank["fsdp"], rank["fsdp"]
        r = rank[case]
        assert "error" not in r, r
        assert r["status"]["phase"] == "enforce"
        assert r["comm_ops"] == ["all_gather", "reduce_scatter"]
        assert r["comm_phases"] == ["backward", "forward"]
        assert r["comm_awaited"]
        assert r["losses"] == pytest.approx(rank["eager_losses"], abs=1e-5)
    assert res[0][case]["schedule"] == res[1][case]["schedule"]
