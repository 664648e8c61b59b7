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


def test_info_says_which_training_mode_the_machine_gets_and_why():
    """measured (clocks lockable), predicted (no permission: default clock measured, the others
    predicted, dry-run enforcement) or simulated (no GPU), each with its reason."""
    import os

    def mode(**env):
        full = {k: v for k, v in os.environ.items()
                if k not in ("GEARSHIFT_DEVICE", "GEARSHIFT_FAKE_GPU", "GEARSHIFT_FAKE_GPU_LOCK")}
        full.update(env)
        out = subprocess.run([sys.executable, "-m", "gearshift", "info", "--json"],
                             capture_output=True, text=True, env=full)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)["gpu_mode"]
        text = subprocess.run([sys.executable, "-m", "gearshift", "info"], capture_output=True,
                              text=True, env=full).stdout
        assert f"training mode: {got['mode']} (" in text
        return got

    measured = mode(GEARSHIFT_FAKE_GPU="h100-sxm")
    assert measured["mode"] == "measured" and "clocks can be locked" in measured["why"]
    predicted = mode(GEARSHIFT_FAKE_GPU="h100-sxm", GEARSHIFT_FAKE_GPU_LOCK="0")
    assert predicted["mode"] == "predicted" and "may not lock clocks" in predicted["why"]
    assert "predicted" in predicted["why"] and "dry-run" in predicted["why"]
    assert mode(GEARSHIFT_DEVICE="sim")["mode"] == "simulated"


def test_training_mode_of_each_device_choice():
    from gearshift.devices.open import AutoChoice
    from gearshift.integrations.online import gpu_mode

    assert gpu_mode(AutoChoice("nvml", "a GPU is present and this process may lock its "
                               "clocks"))[0] == "measured"
    assert gpu_mode(AutoChoice("daemon:/run/g.sock", "the daemon's socket exists"))[0] == \
        "measured"
    mode, why = gpu_mode(AutoChoice("dry-run", "a GPU is present but this process may not "
                                    "lock clocks (not root)"))
    assert mode == "predicted" and "not root" in why
    assert gpu_mode(AutoChoice("sim", "no GPU visible"))[0] == "simulated"
