import json
import subprocess
import sys


def gearshift(*args):
    return subprocess.run([sys.executable, "-m", "gearshift", *args], capture_output=True,
                          text=True)


def test_info_text_and_json():
    out = gearshift("info")
    assert out.returncode == 0, out.stderr
    assert "native extension: built" in out.stdout
    assert "default device:" in out.stdout
    data = json.loads(gearshift("info", "--json").stdout)
    assert set(data["libraries"]) == {"cuda", "nvml", "cupti"}
    if not data["nvml"]["available"]:
        assert data["default_device"]["device"] in ("sim",) or "GEARSHIFT_DEVICE" in \
            data["default_device"]["why"]
        assert data["nvml"]["reason"]


def test_unknown_command_and_stub_exit_nonzero():
    assert gearshift("frobnicate").returncode != 0
