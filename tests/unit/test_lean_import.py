"""`import gearshift` maps none of CUDA, NVML, CUPTI and imports neither torch nor _C."""

import json
import subprocess
import sys

PROBE = r"""
import json, sys
import gearshift, gearshift.model, gearshift.cli
maps = open('/proc/self/maps').read()
print(json.dumps({
  'libs': [n for n in ('libcuda', 'libnvidia-ml', 'libcupti', 'libtorch') if n in maps],
  'modules': [m for m in ('torch', 'pynvml', 'gearshift._C', 'pandas', 'matplotlib')
              if m in sys.modules],
}))
"""


def test_import_is_lean():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data == {"libs": [], "modules": []}
