"""The real-GPU step reader shared by the nvml and daemon devices (devices/gpu.read_step)."""
from types import SimpleNamespace

from gearshift.devices.gpu import read_step


class _Session:
    def __init__(self):
        self.events = []

    def switch_events(self):
        return list(self.events)


def _ev(partition, detect_ns):
    return SimpleNamespace(partition=partition, detect_ns=detect_ns)


def test_each_step_reads_only_its_own_boundary_events():
    dev, s = SimpleNamespace(), _Session()
    sched = SimpleNamespace(entries=[0, 1, 2])
    s.events = [_ev(0, 1_000_000_000), _ev(1, 2_000_000_000), _ev(1, 2_500_000_000),
                _ev(2, 0)]  # a boundary the controller never saw has detect_ns 0
    first = read_step(dev, s, sched, 1234)
    assert first.boundary_s == [1.0, 2.0, None]          # the first sighting of each partition
    assert first.reads[0][1] == 1234
    s.events += [_ev(0, 5_000_000_000)]
    second = read_step(dev, s, sched, 1300)
    assert second.boundary_s == [5.0, None, None]        # earlier steps' events are not re-read
    assert read_step(dev, s, sched, 1400).boundary_s == []   # no new event: no boundary times
