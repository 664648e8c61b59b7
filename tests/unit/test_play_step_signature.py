"""Every device's play_step takes what the in-loop profiler passes it.

The real GPU's play_step runs only on a GPU, so a changed call site (integrations/online.py:
``play_step(session, schedule, overlaps)``) once broke the nvml/dry-run path with a TypeError
that no CPU test saw; this checks the signatures themselves."""

import inspect

from gearshift.devices.daemon import DaemonDevice
from gearshift.devices.fake_gpu import FakeGpuDevice
from gearshift.devices.gpu import GpuDevice


def _takes_session_schedule_overlaps(fn) -> bool:
    sig = inspect.signature(fn)
    try:
        sig.bind("session", "schedule", "overlaps")
    except TypeError:
        return False
    return True


def test_every_device_play_step_takes_session_schedule_and_overlaps():
    for fn in (GpuDevice.play_step, FakeGpuDevice.play_step, DaemonDevice._real_step):
        assert _takes_session_schedule_overlaps(fn.__get__(object())), fn.__qualname__
