"""`gearshift profile` and `gearshift run` refuse a device that cannot do their job, cleanly."""

from __future__ import annotations

import pytest
from gearshift.cli import main
from gearshift.devices import Capabilities


class RealGpuLike:
    """What the registry opens for a real GPU: neither replay nor profiling from the CLI."""

    name = "NVIDIA H100 80GB HBM3 (gpu 0)"
    capabilities = Capabilities(simulated=False, clock_control=True, energy_source="measured",
                                needs_step=True)


@pytest.fixture
def real_gpu(monkeypatch):
    import gearshift.devices as devices  # noqa: PLC0415

    monkeypatch.setattr(devices, "open_device", lambda spec, preset=None: RealGpuLike())


@pytest.mark.parametrize("args, words", [
    (["profile", "t.json", "p.json", "--device", "nvml"], "cannot run your training step on"),
    (["run", "s.json", "--trace", "t.json", "--device", "nvml"], "replays traces on the simulated"),
])
def test_refuses_real_gpu(real_gpu, tmp_path, monkeypatch, capsys, args, words):
    import gearshift.model as model  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    for cls in ("KernelTrace", "Partitioning", "Schedule"):   # the files are never read
        monkeypatch.setattr(getattr(model, cls), "load", classmethod(lambda c, p: object()))
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert words in err and RealGpuLike.name in err and "fix:" in err
