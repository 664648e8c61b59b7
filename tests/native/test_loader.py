"""The native loader opens NVIDIA libraries at run time and says why not when it cannot."""

import subprocess
import sys

import pytest

from gearshift import _native

PROBE = r"""
import json
from gearshift import _native
print(json.dumps({n: _native.library_status(n) for n in ('cuda', 'nvml', 'cupti')}))
"""


def run_probe(env_extra):
    import json
    import os

    env = dict(os.environ, **env_extra)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout)


def test_build_info_says_no_cuda_link():
    info = _native.build_info()
    assert info["links_cuda"] is False
    assert info["cxx_standard"] >= 201703


def test_cupti_search_order_and_reasons():
    st = run_probe({"GEARSHIFT_CUPTI_LIBRARY": "/nonexistent/libcupti.so"})["cupti"]
    assert st["tried"][:4] == ["/nonexistent/libcupti.so", "libcupti.so.13", "libcupti.so.12",
                               "libcupti.so"][: len(st["tried"])]
    if not st["loaded"]:
        assert st["error"], "a library that did not load must say why"


def test_override_opens_given_library():
    # libm stands in for a driver library: the override path is opened, and reported.
    st = run_probe({"GEARSHIFT_NVML_LIBRARY": "libm.so.6"})["nvml"]
    assert st["loaded"] and st["path"] == "libm.so.6"


def test_unknown_library_name():
    with pytest.raises(ValueError, match="expected one of cuda, nvml, cupti"):
        _native.library_status("cudnn")


def test_mapped_probe():
    assert _native.library_is_mapped("libc")
    assert not _native.library_is_mapped("libdefinitely-not-here")


OVERRIDE_PROBE = r"""
import json
from gearshift.devices import nvml_query
from gearshift.devices.fake_gpu.nvml import FakeNvmlGpu
from gearshift.devices.sim.presets import PRESETS
from gearshift.runtime import make_backend
gpu = FakeNvmlGpu(PRESETS["a100-sxm"])          # one GPU in the library the variable names
b = make_backend("nvml")                        # no path given: GEARSHIFT_NVML_LIBRARY's
rep = nvml_query.query()
print(json.dumps({"count": b.device_count(), "clocks": b.supported_sm_mhz(0),
                  "names": [g.name for g in rep.gpus], "nvml_clocks": rep.gpus[0].supported_sm_mhz}))
"""


def test_nvml_override_reaches_the_native_backend_and_pynvml():
    """GEARSHIFT_NVML_LIBRARY points both NVML users (NvmlBackend, nvml_query) at one library."""
    import json
    import os

    from gearshift.devices.fake_gpu.nvml import library_path
    from gearshift.devices.sim.presets import PRESETS

    env = dict(os.environ, GEARSHIFT_NVML_LIBRARY=str(library_path()))
    out = subprocess.run([sys.executable, "-c", OVERRIDE_PROBE], capture_output=True, text=True,
                         env=env, check=True)
    got = json.loads(out.stdout)
    clocks = sorted(PRESETS["a100-sxm"].freqs_mhz, reverse=True)
    assert got["count"] == 1 and got["clocks"] == clocks and got["nvml_clocks"] == clocks
    assert got["names"] == [PRESETS["a100-sxm"].name]


GPU_PROBE = r"""
import json
from gearshift.devices.fake_gpu.nvml import FakeNvmlGpu
from gearshift.devices.gpu import GpuDevice
from gearshift.devices.sim.presets import PRESETS
nv = FakeNvmlGpu(PRESETS["h100-sxm"], noise_rel=0.0)
dev = GpuDevice("nvml", 0)                      # the real-GPU device, on the fake library
dev.set_sm_clock(1500)
locked = nv.requested_mhz()
e0 = dev.energy_j(); nv.advance(1.0, 300.0); e1 = dev.energy_j()
nv.set_return("nvmlDeviceSetGpuLockedClocks", 4)
try:
    dev.set_sm_clock(1200); refused = ""
except Exception as exc:
    refused = type(exc).__name__
dev.clock_permission_lost("NO_PERMISSION")
print(json.dumps({"name": dev.facts.name, "locked": locked, "joules": e1 - e0,
                  "refused": refused, "after": dev.clock_backend().name,
                  "may_lock": dev.may_lock_clocks, "requested": nv.requested_mhz()}))
"""


def test_the_nvml_device_runs_on_the_fake_library():
    """The real GPU device (devices/gpu.py) with GEARSHIFT_NVML_LIBRARY at the fake library:
    its clocks, energy reads and a refused lock go through the same calls as on a GPU."""
    import json
    import os

    from gearshift.devices.fake_gpu.nvml import library_path

    env = dict(os.environ, GEARSHIFT_NVML_LIBRARY=str(library_path()))
    out = subprocess.run([sys.executable, "-c", GPU_PROBE], capture_output=True, text=True,
                         env=env, check=True)
    got = json.loads(out.stdout)
    assert got["name"].startswith("NVIDIA H100") and got["locked"] == 1500
    assert abs(got["joules"] - 300.0) < 1.0                     # 1 s at 300 W, whole mJ, stale
    assert got["refused"] == "ClockPermissionError"
    assert got["after"] == "dry-run" and got["may_lock"] is False
    assert got["requested"] == 1500                              # the refused lock changed nothing
