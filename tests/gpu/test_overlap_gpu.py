"""The overlap pass under NCCL on real GPUs (skips without a GPU or NCCL).

One rank per GPU, two where there are two (NCCL refuses two ranks on one GPU, so a one-GPU
machine runs one rank). The tensor-parallel block of tests/unit/test_overlap_tp.py trains a few
steps under ``gearshift.compile`` with a schedule of two nanobatches, windows and an SM count:
losses must match the untransformed model's, the collectives must launch and wait in the
schedule's order, and the communicator with the CTA limit must be created and accepted by NCCL.
No GPU setting is changed: the clock half runs on the simulated device (``device="sim"``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _spawn import spawn_ranks  # noqa: E402
from test_overlap_tp import STEPS  # noqa: E402  (the same steps as the gloo test's _train)

CTAS = 4
OVERLAPS = ["window0-50", "serial", "window1-2", f"window0-0/sms={CTAS}"]


def _worker(rank, init_method, world, out_dir):
    import copy

    from test_overlap_tp import TPBlock, _fixed_plan, _train

    os.environ.update(GEARSHIFT_OVERLAP_RECORD="1", GEARSHIFT_SIM_PRESET="h100-sxm")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=init_method, rank=rank, world_size=world,
                            device_id=torch.device("cuda", rank))
    try:
        import gearshift
        from gearshift.integrations import GearshiftConfig, overlap_pass
        from gearshift.integrations import wrap as wrap_mod

        sys.modules[wrap_mod.Runner.__module__].plan_for = _fixed_plan(OVERLAPS, 2)
        torch.manual_seed(1234 + rank)
        model = TPBlock(dist.group.WORLD.group_name, tp=world).cuda()
        torch.manual_seed(99)
        x = torch.randn(8, 16, 16, device="cuda")
        target = torch.randn(8, 16, 16, device="cuda")

        def train(step_model, params):
            losses = _train(step_model, params, x, target)  # the gloo test's STEPS steps
            torch.cuda.synchronize()
            return losses

        ref = copy.deepcopy(model)
        out = {"reference": train(ref, ref.parameters())}
        m = copy.deepcopy(model)
        wrapped = gearshift.compile(m, GearshiftConfig(device="sim", progress=False))
        overlap_pass.recorded_events(clear=True)
        out["wrap"] = train(wrapped, m.parameters())
        out["events"] = [e for e in overlap_pass.recorded_events(clear=True) if e[0] != "op"]
        out["status"] = wrapped.gearshift.status()
        groups = getattr(wrapped.gearshift, "_overlap_groups", None)
        out["created"] = len(groups.created) if groups is not None else None
        # what NCCL was given for the communicator with the CTA limit
        limits = []
        for (_, ctas), name in (groups.created.items() if groups is not None else []):
            from torch.distributed.distributed_c10d import _resolve_process_group

            backend = _resolve_process_group(name)._get_backend(torch.device("cuda", rank))
            opts = getattr(backend, "options", None)
            cfg = getattr(opts, "config", None)
            limits.append([ctas, getattr(cfg, "min_ctas", None), getattr(cfg, "max_ctas", None)])
        out["limits"] = limits
        wrapped.gearshift.close()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(out, f)
    finally:
        dist.destroy_process_group()


def test_transformed_step_runs_under_nccl_with_cta_limits(tmp_path):
    if not torch.cuda.is_available() or not dist.is_available() or not dist.is_nccl_available():
        pytest.skip("needs CUDA and NCCL")
    if not hasattr(dist.ProcessGroupNCCL.Options(), "config"):
        pytest.skip("this PyTorch's NCCL has no per-communicator CTA limits (NCCL < 2.17)")
    world = min(2, torch.cuda.device_count())
    spawn_ranks(_worker, world, (world, str(tmp_path)))
    for r in range(world):
        out = json.loads((tmp_path / f"rank{r}.json").read_text())
        for got, want in zip(out["wrap"], out["reference"]):
            assert abs(got - want) <= 1e-4 * max(1.0, abs(want)), (out["wrap"], out["reference"])
        st = out["status"]
        assert st["overlap_applied"] is True, st["overlap_skipped_reason"]
        assert st["nanobatches"] == 2
        assert st["comm_sms_skipped_reason"] is None
        ctas = {p["collective"]: p["cta_count"] for p in st["partitions"]}
        assert ctas[3] == CTAS and ctas[0] is None
        assert out["created"] == 1                       # one communicator, reused
        for want, lo, hi in out["limits"]:
            assert lo in (None, want) and hi in (None, want)
        # same launch/wait order as on gloo (the schedule's)
        from test_overlap_tp import BACKWARD, FORWARD

        coll = [(e[0], e[2], e[3]) for e in out["events"]]
        per = len(FORWARD) + len(BACKWARD)
        assert coll[:per] == FORWARD + BACKWARD and len(coll) == STEPS * per
