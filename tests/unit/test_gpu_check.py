"""bench/gpu_check.py: its logic runs on the fake GPU (dry-run), and it fails cleanly without a GPU."""

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_fake_mode_passes_every_check(capsys, monkeypatch):
    monkeypatch.delenv("GEARSHIFT_FAKE_GPU_LOCK", raising=False)
    n = torch.get_num_threads()
    try:
        rc = load().main(["--fake"])
    finally:
        torch.set_num_threads(n)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "gpu_check=ok", "\n".join(out)
    assert rc == 0
    text = "\n".join(out)
    for row in ("launches/step", "predicted plan", "switch latency", "hook cost",
                "energy counter"):
        assert row in text
    assert "(predicted)" in text and "dry-run" in text
    assert "fake libnvidia-ml libgearshift-fake-nvml.so" in text   # NVML read natively


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU failure")
def test_gpu_check_without_a_gpu_fails_with_a_reason(capsys):
    assert load().main([]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("gpu_check=failed ") and "GPU" in last
