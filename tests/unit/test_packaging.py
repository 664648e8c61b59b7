"""Packaging: a clear error where torch is missing; the measured data ships in the package."""

import subprocess
import sys
import textwrap

from gearshift.datasets import data_root, packaged

NO_TORCH = textwrap.dedent("""
    import sys
    class Block:                      # torch is not installed
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
""")


def _run(code, *args):
    return subprocess.run([sys.executable, "-c", NO_TORCH + code, *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_without_torch_says_what_to_install():
    r = _run("from gearshift.cli import main; main(sys.argv[1:])", "trace", "-m", "gpt-tiny")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "error: `gearshift trace` needs torch, which is not installed"
    assert "pip install 'gearshift[torch]'" in lines[1] and "Traceback" not in r.stderr


def test_compile_without_torch_says_what_to_install():
    r = _run("import gearshift\ntry:\n    gearshift.compile(object())\n"
             "except gearshift.ConfigError as e:\n    print(e.problem)")
    assert r.stdout.strip() == "gearshift.compile needs torch, which is not installed", r.stderr


def test_measured_data_ships_with_its_source_note(tmp_path, monkeypatch):
    for name, probe in (("perseus_a40", "experiments/measured_plans.csv"),
                        ("zeus_nsdi23_traces", "trace/summary_train.csv")):
        root = packaged(name)
        assert (root / "SOURCE.md").is_file() and (root / probe).is_file()
        # away from a checkout (no ../shared/data) the shipped copy is the default
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("GEARSHIFT_SHARED_DATA", raising=False)
        assert data_root(name) == root.parent
