"""bench/kareus_gap.py: the wave-quantisation bound and the clock-sensitivity table it prints."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "kareus_gap.py"


def load():
    spec = importlib.util.spec_from_file_location("kareus_gap", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_wave_efficiency_counts_the_partly_empty_last_wave():
    g = load()
    # 2048 tiles of 256x128 on 108 SMs: 19 waves, the last one 104/108 full
    assert g.wave_efficiency(32768, 2048, 256, 128, 108) == pytest.approx(2048 / (108 * 19))
    assert g.wave_efficiency(108 * 256, 128, 256, 128, 108) == 1.0
    # halving the rows of a 19-wave GEMM leaves a 9.5-wave one: more of it is the empty wave
    assert g.wave_efficiency(16384, 2048, 256, 128, 108) < g.wave_efficiency(32768, 2048, 256,
                                                                             128, 108)


def test_clock_sensitivity_separates_collective_bound_partitions():
    from gearshift.devices import open_device
    from gearshift.trace import trace_preset

    g = load()
    tr = trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="middle", batch=2, seq=512,
                      nanobatches=2)
    rows = g.clock_sensitivity(tr, open_device("sim", preset="a100-sxm"))
    assert rows and all(r[4] >= 1.0 - 1e-9 for r in rows)       # never faster at 900 MHz
    assert all(r[5] < 1.0 for r in rows)                         # always less energy
    compute = [r for r in rows if not r[2]]
    assert max(r[4] for r in compute) > 1.2                      # compute partitions slow down


def test_host_floor_counts_every_kernel_of_each_instruction():
    from gearshift.devices import open_device
    from gearshift.trace import trace_preset

    g = load()
    dev = open_device("sim", preset="a100-sxm")
    one = g.host_floor(trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="middle", batch=2,
                                    seq=512), dev, "serial", 1e-4)
    two = g.host_floor(trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="middle", batch=2,
                                    seq=512, nanobatches=2), dev, "window0-99", 1e-4)
    assert set(one) == {"forward", "backward"}
    for phase in one:
        k1, gpu1, host1 = one[phase]
        assert host1 == pytest.approx(k1 * 1e-4) and gpu1 > 0
        assert two[phase][0] == 2 * k1          # every kernel copied per nanobatch
