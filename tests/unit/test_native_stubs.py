"""The native boundary is typed: python/gearshift/_C.pyi matches the built extension (stubtest)
and type-checks under mypy --strict together with code that uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")
from gearshift import _native  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = ROOT / "python"
STUB = PYTHON_DIR / "gearshift" / "_C.pyi"

# Every pybind11 class has the metaclass pybind11_type and, without a bound constructor, an
# `__init__(*args, **kwargs)` that raises: a stub cannot spell either, and neither hides a
# missing or mistyped member.
PYBIND11_NOISE = ("metaclass differs", 'stub does not have *args parameter "args"')

USAGE = '''
from gearshift import _C

def clocks(b: _C.ClockBackend) -> list[int]:
    return b.supported_sm_mhz(0)

def run() -> int:
    b = _C.SimBackend(supported_mhz=[1980, 1500], default_mhz=1980)
    rt = _C.Runtime(b, handle_signals=False)
    rt.start()
    sub: _C.Subscription = rt.subscribe()
    ok: bool = sub.active
    st = rt.stats()
    refused: int = st.clock_refusals
    events: list[_C.SwitchEvent] = rt.switch_events()
    actions = [e.action.upper() for e in events]
    ticks = [e.t_ns + 1 for e in b.events()]
    rt.stop()
    info = _C.build_info()
    lib = _C.library_status("cuda")
    cost = _C.bench_hook_cost(1000, 8, 1)
    held: int | None = None
    return len(actions) + len(ticks) + refused + int(ok) + info.cxx_standard + len(lib.tried) \\
        + int(cost.apply_ns) + (held or 0) + len(clocks(b))
'''


def _env() -> dict:
    env = dict(os.environ)
    env["MYPYPATH"] = str(PYTHON_DIR)
    return env


@pytest.mark.skipif(not _native.available(), reason="the native extension is not built")
def test_stub_matches_the_extension():
    p = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--concise", "gearshift._C"],
                       capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    errors = [line for line in p.stdout.splitlines()
              if line.startswith("gearshift._C") and not any(n in line for n in PYBIND11_NOISE)]
    assert not errors, "\n".join(errors)
    assert "error" not in p.stderr.lower(), p.stderr


@pytest.mark.skipif(not _native.available(), reason="the native extension is not built")
def test_stubtest_would_catch_a_stale_stub(tmp_path):
    # the check above is not vacuous: a stub naming something the module lacks fails it
    pkg = tmp_path / "gearshift"
    pkg.mkdir()
    (pkg / "__init__.pyi").write_text("")
    (pkg / "_C.pyi").write_text(STUB.read_text() + "\ndef no_such_function() -> int: ...\n")
    env = _env()
    env["MYPYPATH"] = str(tmp_path)
    p = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--concise", "gearshift._C"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert "gearshift._C.no_such_function" in p.stdout


def test_stub_and_its_use_pass_mypy_strict(tmp_path):
    usage = tmp_path / "use_native.py"
    usage.write_text(textwrap.dedent(USAGE))
    bad = tmp_path / "misuse_native.py"
    bad.write_text("from gearshift import _C\n\nx: str = _C.build_info().cxx_standard\n"
                   "y = _C.Runtime(_C.DryRunBackend()).stats()['launches']\n")
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
           "--no-incremental", "--cache-dir", os.devnull]
    ok = subprocess.run(cmd + [str(STUB), str(usage)], capture_output=True, text=True,
                        env=_env(), cwd=ROOT, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # and a reader that still treats a result as a dict is caught
    ko = subprocess.run(cmd + [str(STUB), str(bad)], capture_output=True, text=True,
                        env=_env(), cwd=ROOT, timeout=300)
    assert ko.returncode != 0
    assert "misuse_native.py:3" in ko.stdout and "misuse_native.py:4" in ko.stdout, ko.stdout
