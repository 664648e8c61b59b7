"""Builds the plain C++ runtime with its unit tests (no pybind11, no CUDA) and runs them via ctest."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("GEARSHIFT_CPP_TEST_BUILD", REPO / "build" / "cpp-tests"))


def _cmake() -> str:
    venv_cmake = REPO / ".venv" / "bin" / "cmake"
    found = str(venv_cmake) if venv_cmake.exists() else shutil.which("cmake")
    if found is None:
        pytest.skip("cmake not found")
    return found


def test_cpp_unit_tests_pass():
    cmake = _cmake()
    ctest = str(Path(cmake).with_name("ctest"))
    gen = ["-G", "Ninja"] if shutil.which("ninja") or (Path(cmake).parent / "ninja").exists() else []
    env = dict(os.environ, PATH=f"{Path(cmake).parent}:{os.environ.get('PATH', '')}")
    subprocess.run([cmake, "-S", str(REPO), "-B", str(BUILD), *gen, "-DGEARSHIFT_PYTHON=OFF",
                    "-DGEARSHIFT_CPP_TESTS=ON", "-DCMAKE_BUILD_TYPE=Debug"],
                   check=True, capture_output=True, env=env)
    build = subprocess.run([cmake, "--build", str(BUILD), "-j2"], capture_output=True, text=True,
                           env=env)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    run = subprocess.run([ctest, "--test-dir", str(BUILD), "--output-on-failure",
                          "--timeout", "300"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "tests passed" in run.stdout
