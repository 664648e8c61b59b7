"""One rank of test_distributed.py (run by torchrun with 2 gloo ranks on CPU).

Writes <out>/rank<R>.json with what each scenario saw on this rank."""

import json
import os
import sys
import warnings

import torch
import torch.distributed as dist

import gearshift
from gearshift.integrations.wrap import runner_of, unwrap


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 256)
        self.b = torch.nn.Linear(256, 256)
        self.c = torch.nn.Linear(256, 4)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def train(model, params, steps=2):
    torch.manual_seed(1 + dist.get_rank())
    x = torch.randn(8, 16)
    opt = torch.optim.SGD(params, lr=0.01)
    losses = []
    for _ in range(steps):
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def seen(runner):
    trace = runner.enforcer.trace if runner.enforcer else None
    comm = [k for k in trace.kernels if k.kind == "comm"] if trace else []
    return {"status": {k: v for k, v in runner.status().items() if k != "frontier"},
            "comm_ops": sorted({k.comm_op for k in comm}),
            "comm_bytes": sum(k.comm_bytes or 0 for k in comm),
            "comm_phases": sorted({k.phase for k in comm}),
            # every collective waits for the kernels it reads, and something waits for it
            "comm_have_deps": all(k.deps for k in comm),
            "comm_awaited": all(any(i in (k.deps or ()) for k in trace.kernels)
                                for i, c in enumerate(trace.kernels) if c.kind == "comm")
            if trace else False,
            "signature": trace.signature() if trace else None,
            "world_size": trace.meta.get("world_size") if trace else None,
            "schedule": runner.schedule.to_json() if runner.schedule else None}


def main(out):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    from torch.nn.parallel import DistributedDataParallel as DDP

    res = {}
    cfg = dict(device="sim", progress=False)

    # DDP first, then gearshift
    torch.manual_seed(0)
    net = Net()
    ddp = gearshift.compile(DDP(net), schedule_path=os.path.join(out, "a.json"), **cfg)
    losses = train(ddp, ddp.parameters())
    res["ddp_then_compile"] = dict(seen(runner_of(ddp)), losses=losses)
    unwrap(net)

    # gearshift first, then DDP; the eager DDP run gives the reference losses
    torch.manual_seed(0)
    ref = DDP(Net())
    res["eager_losses"] = train(ref, ref.parameters())
    torch.manual_seed(0)
    net = gearshift.compile(Net(), schedule_path=os.path.join(out, "b.json"), **cfg)
    ddp = DDP(net)
    losses = train(ddp, ddp.parameters())
    res["compile_then_ddp"] = dict(seen(net.gearshift), losses=losses)
    unwrap(net)

    # tracing fails on rank 1 only: both ranks fall back together, nobody waits forever
    def loss_fn(out):
        if dist.get_rank() == 1:
            raise ValueError("a loss that fails on rank 1")
        return out.sum()

    torch.manual_seed(0)
    net = gearshift.compile(Net(), loss_fn=loss_fn, **cfg)
    ddp = DDP(net)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        losses = train(ddp, ddp.parameters())
    res["one_rank_fails"] = {"status": net.gearshift.status(), "losses": losses,
                             "warnings": [str(x.message) for x in w
                                          if "gearshift" in str(x.message)]}
    unwrap(net)

    # the device fails to open on rank 1 only: both ranks fall back at the first step
    import gearshift.integrations.runner as runner_mod

    def broken(*a, **k):
        raise RuntimeError("no device on rank 1")

    original = runner_mod.open_device
    if rank == 1:
        runner_mod.open_device = broken
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        net = gearshift.compile(Net(), **cfg)
        runner_mod.open_device = original
        ddp = DDP(net)
        losses = train(ddp, ddp.parameters())
    res["device_fails_on_rank1"] = {"status": net.gearshift.status(), "losses": losses}
    unwrap(net)

    # FSDP2
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        torch.manual_seed(0)
        net = Net()
        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        for m in (net.a, net.b, net.c):
            fully_shard(m, mesh=mesh)
        fully_shard(net, mesh=mesh)
        g = gearshift.compile(net, schedule_path=os.path.join(out, "f.json"), **cfg)
        losses = train(g, g.parameters())
        res["fsdp"] = dict(seen(g.gearshift), losses=losses)
        unwrap(net)

        # gearshift first, then FSDP2
        torch.manual_seed(0)
        net = gearshift.compile(Net(), **cfg)
        for m in (net.a, net.b, net.c):
            fully_shard(m, mesh=mesh)
        fully_shard(net, mesh=mesh)
        losses = train(net, net.parameters())
        res["compile_then_fsdp"] = dict(seen(runner_of(net)), losses=losses)
    except Exception as exc:  # noqa: BLE001 (reported to the test, which decides)
        res["fsdp"] = {"error": f"{type(exc).__name__}: {exc}"}

    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(res, f, default=str)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
