"""Dependency-true timelines: on every zoo preset, split into nanobatches or not, under every
overlap option, no kernel starts before the kernels it reads from end and kernels on one
stream never overlap (issue #13)."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.devices.sim import SimDevice
from gearshift.devices.sim.timeline import dependency_violations
from gearshift.model import NO_OVERLAP, Overlap
from gearshift.partition import partition
from gearshift.profile.options import DEFAULT_OVERLAPS
from gearshift.trace import presets, trace_preset
from gearshift.trace.zoo import GPT_PRESETS, preset_config

# every option of the profile's default set, and the corners of the contract's form
OVERLAPS = [Overlap.parse(o) for o in DEFAULT_OVERLAPS] + [
    Overlap.parse(o) for o in ("window0-0", "window1-1", "window3-5/sms=12/block=512",
                               "window0-99/sms=3/block=1024", "serial/sms=6")]
_TRACES: dict = {}


def _traced(name: str, nanobatches: int):
    key = (name, nanobatches)
    if key not in _TRACES:
        cfg = preset_config(name)
        # two layers keep the test quick; every layer of a preset has the same data flow
        # (a CNN's batch norm needs two samples per nanobatch)
        sizes = {"layers": min(cfg.layers, 2)} if name in GPT_PRESETS else \
            {"batch": max(cfg.batch, 4)}
        _TRACES[key] = trace_preset(name, nanobatches=nanobatches, **sizes)
    return _TRACES[key]


def _check(tr, res):
    bad = dependency_violations([k.deps for k in tr.kernels], res.kernel_stream,
                                res.kernel_start_s, res.kernel_end_s)
    assert not bad, bad[:3]
    assert np.all(res.kernel_end_s >= res.kernel_start_s)
    # the iteration spans exactly its kernels
    assert res.kernel_end_s.max() == pytest.approx(res.time_s)
    assert res.kernel_start_s.min() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", presets())
@pytest.mark.parametrize("nanobatches", [1, 2])
def test_every_preset_and_overlap_respects_data_flow(name, nanobatches):
    tr = _traced(name, nanobatches)
    assert tr.has_deps() and tr.nanobatches == nanobatches
    parts = partition(tr, min_partition_s=0.0 if len(tr) < 400 else None)
    dev = SimDevice("a100-sxm")
    top = dev.preset.max_freq_mhz
    rng = np.random.default_rng(0)
    for ov in OVERLAPS:
        choices = [(top, ov if p.has_comm else NO_OVERLAP) for p in parts.partitions]
        _check(tr, dev.run_iteration(tr, parts, choices, advance=False, switch_latency_s=0.0))
    # mixed clocks with switches landing inside partitions, mixed overlap options
    fs = rng.choice(dev.preset.freqs_mhz[:40], size=len(parts))
    ovs = rng.choice(len(OVERLAPS), size=len(parts))
    choices = [(int(f), OVERLAPS[o] if p.has_comm else NO_OVERLAP)
               for f, o, p in zip(fs, ovs, parts.partitions)]
    _check(tr, dev.run_iteration(tr, parts, choices, advance=False))


def test_nanobatched_window_overlaps_and_serial_does_not():
    tr = _traced("gpt-tiny-tp2", 2)
    parts = partition(tr, min_partition_s=0.0)
    dev = SimDevice("a100-sxm", power_cap=False)
    comm = np.array([k.kind == "comm" for k in tr.kernels])

    def run(ov):
        return dev.run_iteration(tr, parts, [(1410, ov if p.has_comm else NO_OVERLAP)
                                             for p in parts.partitions], advance=False)

    def concurrent(res):
        s, e = res.kernel_start_s, res.kernel_end_s
        ci, mi = np.flatnonzero(~comm), np.flatnonzero(comm)
        return int(((s[ci, None] < e[None, mi] - 1e-12) &
                    (s[None, mi] < e[ci, None] - 1e-12)).sum())

    ser, win = run(Overlap("serial")), run(Overlap.window(0, 99))
    assert concurrent(ser) == 0
    assert concurrent(win) > 0
    assert win.time_s < ser.time_s
    # each collective overlaps only compute of the other nanobatch
    s, e = win.kernel_start_s, win.kernel_end_s
    for m in np.flatnonzero(comm):
        beside = np.flatnonzero(~comm & (s < e[m] - 1e-12) & (s[m] < e - 1e-12))
        assert all(tr.kernels[c].nanobatch != tr.kernels[m].nanobatch for c in beside)
