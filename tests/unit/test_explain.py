"""What a plan saves and why: the explanation's numbers come from this model's frontier."""

import re

import pytest

torch = pytest.importorskip("torch")
for mod in ("gearshift.trace", "gearshift.partition", "gearshift.search.iteration"):
    pytest.importorskip(mod)

import gearshift  # noqa: E402
from gearshift.integrations.explain import SLACKS, saving_at  # noqa: E402
from gearshift.model import Frontier, FrontierPoint  # noqa: E402


def test_saving_at_reads_the_frontier():
    f = Frontier([FrontierPoint(1.0, 100.0), FrontierPoint(1.02, 90.0),
                  FrontierPoint(1.1, 70.0)], baseline=FrontierPoint(1.0, 100.0))
    assert saving_at(f, 0.0) == pytest.approx(0.0)
    assert saving_at(f, 0.02) == pytest.approx(0.10)
    assert saving_at(f, 0.05) == pytest.approx(0.10)
    assert saving_at(Frontier([FrontierPoint(1.0, 1.0)]), 0.05) is None


@pytest.mark.parametrize("width", [64, 2048])
def test_status_and_summary_explain_the_plan(width, capsys):
    model = torch.nn.Sequential(torch.nn.Linear(256, width), torch.nn.GELU(),
                                torch.nn.Linear(width, 256))
    g = gearshift.compile(model, device="sim", progress=True,
                          example_inputs=torch.randn(512, 256))
    run = g.gearshift
    st, sv = run.status(), run.savings()
    assert st["explanation"] == sv["explanation"] and st["phase"] == "enforce"
    frontier = run.plan.frontier
    # the summary printed at wrap time: the frontier's saving at +0, +2 and +5 % time
    err = capsys.readouterr().err
    for s in SLACKS:
        v = saving_at(frontier, s)
        assert f"{-100 * v:+.1f} % energy at +{100 * s:.0f} % time" in err
    saving = run.schedule.predicted["energy_saving"]
    if saving > 0.005:
        assert f"{100 * saving:.1f} % less energy" in st["explanation"]
    else:   # a zero is explained, with what a small slowdown would buy on this frontier
        assert "because" in st["explanation"]
        for x, pct in re.findall(r"max-slowdown=([\d.]+) would save ([\d.]+) %",
                                 st["explanation"]):
            assert float(pct) == pytest.approx(
                100 * saving_at(frontier, float(x) - 1, "fastest"), abs=0.051)
