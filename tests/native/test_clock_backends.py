"""Clock backends through the bindings: dry-run logging and typed errors."""

import pytest

from gearshift import _native
from gearshift.errors import DeviceError, UnsupportedClockError


def test_dry_run_logs_would_be_switches():
    C = _native.native()
    b = C.DryRunBackend(device_count=1, supported_mhz=[1980, 1410, 1005])
    assert b.name == "dry-run"
    assert b.supported_sm_mhz(0) == [1980, 1410, 1005]
    t0 = C.steady_now_ns()
    b.lock_sm_mhz(0, 1410)
    b.reset(0)
    ev = b.events()
    assert [(e.freq_mhz, e.reset) for e in ev] == [(1410, False), (0, True)]
    assert t0 <= ev[0].t_ns <= ev[1].t_ns <= C.steady_now_ns()


def test_dry_run_errors_are_typed():
    b = _native.native().DryRunBackend(device_count=1, supported_mhz=[1980, 1410])
    with pytest.raises(UnsupportedClockError, match="1234 MHz is not a supported SM clock") as ei:
        b.lock_sm_mhz(0, 1234)
    assert ei.value.fix and "supported clocks" in ei.value.fix
    with pytest.raises(DeviceError, match="out of range"):
        b.lock_sm_mhz(2, 1410)
    assert b.events() == []
