"""torch.compile(model, backend="gearshift"): registered through the entry point, runs the
compiled step under a schedule on the simulated GPU."""

import pytest

torch = pytest.importorskip("torch")
for mod in ("gearshift.trace", "gearshift.partition", "gearshift.search.iteration"):
    pytest.importorskip(mod)

import gearshift  # noqa: E402
from gearshift.integrations import GearshiftConfig, dynamo  # noqa: E402


@pytest.fixture(autouse=True)
def _clean():
    dynamo.reset()
    torch._dynamo.reset()
    yield
    dynamo.reset()
    torch._dynamo.reset()


def _train(compiled, model, steps=3):
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        loss = (compiled(x) - 1.0).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_backend_wraps_the_compiled_step(monkeypatch):
    # inductor's C++ build takes tens of seconds on CPU; the slow test below runs it for real
    import torch._inductor.compile_fx as cfx

    monkeypatch.setattr(cfx, "compile_fx", lambda gm, ex: gm.forward)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    cfg = GearshiftConfig(device="sim", progress=False)
    compiled = torch.compile(model, backend=dynamo.backend(cfg))
    with gearshift.measure("steps") as m:          # opened before the backend picks a device
        losses = _train(compiled, model)
    assert losses[-1] < losses[0]
    run = compiled.gearshift                     # one runner per compiled model
    assert run is dynamo.runner() and run.enforcer.iterations == 3
    # the traced step holds the lifted parameters' backward and optimizer kernels
    phases = {k.phase for k in run.enforcer.trace.kernels}
    assert {"forward", "backward", "optimizer"} <= phases
    assert m.source == "simulated" and m.energy_j("gpu") > 0
    with torch.no_grad():
        compiled(torch.randn(16, 8))
    assert run.enforcer.iterations == 3


def test_backend_is_found_by_name():
    from torch._dynamo.backends.registry import lookup_backend

    dynamo.register()       # the installed entry point does the same; this works either way
    assert lookup_backend("gearshift") is not None


@pytest.mark.slow
def test_backend_with_inductor(monkeypatch):
    monkeypatch.setenv("GEARSHIFT_DEVICE", "sim")
    from gearshift.config import environment

    environment.cache_clear()
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                    torch.nn.Linear(16, 1))
        compiled = torch.compile(model, backend="gearshift")
        losses = _train(compiled, model, steps=2)
        assert losses[-1] < losses[0]
        assert compiled.gearshift.enforcer.iterations == 2
    finally:
        environment.cache_clear()
