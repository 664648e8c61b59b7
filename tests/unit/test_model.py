"""The data model round-trips through its files and rejects malformed ones by field."""

from __future__ import annotations

import json

import pytest

from gearshift.errors import FormatError, ScheduleMismatchError, UnsupportedClockError, VersionError
from gearshift.model import (
    Choice,
    DeviceFacts,
    Frontier,
    FrontierPoint,
    KernelRecord,
    KernelTrace,
    Overlap,
    Partitioning,
    Profile,
    ProfileEntry,
    Schedule,
    ScheduleEntry,
)


def make_trace(n=6) -> KernelTrace:
    ks = []
    for i in range(n):
        comm = i == 2
        ks.append(KernelRecord(name=f"k{i % 3}", kind="comm" if comm else "compute",
                               phase="forward" if i < n // 2 else "backward",
                               module=f"layers.{i // 2}", op="aten::mm", flops=1e9 * (i + 1),
                               bytes_read=1e6, bytes_written=5e5,
                               comm_bytes=4e6 if comm else None,
                               comm_op="all_gather" if comm else "", grid=(8, 1, 1),
                               block=(128, 1, 1)))
    return KernelTrace(ks, model="tiny", source="synthetic", device="meta", meta={"batch": 2})


def make_profile(parts=2) -> Profile:
    dev = DeviceFacts("sim-h100", (1980, 1500, 1005), static_power_w=100.0, idle_power_w=60.0)
    entries = [ProfileEntry(p, f, ov, 1e-3 * 1980 / f, 0.5 + f / 1e4)
               for p in range(parts) for f in dev.supported_freqs_mhz
               for ov in (Overlap("serial"), Overlap.window(0, 99, 16))]
    return Profile(dev, entries, parts, "abc", source="simulated")


def test_trace_roundtrip(tmp_path):
    t = make_trace()
    t.save(tmp_path / "t.json")
    back = KernelTrace.load(tmp_path / "t.json")
    assert back == t
    assert back.signature() == t.signature()
    assert back.total_flops() == pytest.approx(21e9)


def test_trace_signature_changes_with_model():
    a, b = make_trace(), make_trace()
    b.kernels[0].name = "other"
    assert a.signature() != b.signature()
    assert a.signature() == make_trace().signature()


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(kernels=[]), "kernels"),
    (lambda d: d["kernels"][1].update(kind="gpu"), "kernels[1].kind"),
    (lambda d: d["kernels"][0].update(flops="lots"), "kernels[0].flops"),
    (lambda d: d["kernels"][0].update(flops=-1.0), "kernels[0].flops"),
    (lambda d: d["kernels"][0].update(grid=[1, 2]), "kernels[0].grid"),
    (lambda d: d["kernels"][0].pop("name"), "kernels[0].name"),
    (lambda d: d.update(format="gearshift.schedule"), "format"),
    (lambda d: d.update(signature="0000"), "signature"),
])
def test_trace_rejects_malformed(mutate, field):
    d = json.loads(json.dumps(make_trace().to_json()))
    mutate(d)
    with pytest.raises(FormatError) as exc:
        KernelTrace.from_json(d, "t.json")
    assert exc.value.field == field
    assert "fix:" in str(exc.value)


def test_newer_version_refused_with_upgrade_hint():
    d = make_trace().to_json()
    d["version"] = 99
    with pytest.raises(VersionError, match="upgrade gearshift"):
        KernelTrace.from_json(d)


def test_not_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        KernelTrace.load(p)


def test_partitioning_roundtrip_and_cover():
    t = make_trace(6)
    parts = Partitioning.from_cuts(t, [0, 2, 4], ["a", "b", "c"], strategy="test")
    assert [p.num_kernels for p in parts.partitions] == [2, 2, 2]
    assert parts.partitions[1].has_comm and not parts.partitions[0].has_comm
    back = Partitioning.from_json(json.loads(json.dumps(parts.to_json())))
    assert back == parts
    parts.check_trace(t)
    d = parts.to_json()
    d["partitions"][1]["start"] = 3
    with pytest.raises(FormatError, match="contiguous"):
        Partitioning.from_json(d)
    d = parts.to_json()
    d["num_kernels"] = 7
    with pytest.raises(FormatError, match="cover 6 kernels"):
        Partitioning.from_json(d)


def test_overlap_parse():
    assert Overlap.parse("window2-5/sms=12/block=512") == Overlap("window", 2, 5, 12, 512)
    assert Overlap.parse("window3-3/sms=8") == Overlap.window(3, 3, 8)
    assert Overlap.window(0, 4, block_size=1024).key() == "window0-4/block=1024"
    assert Overlap.parse("serial").key() == "serial"
    for ov in (Overlap(), Overlap.window(0, 99, 16), Overlap.window(2, 99, 0, 0),
               Overlap("serial", comm_sms=6), Overlap.window(1, 2, 3, 256)):
        assert Overlap.parse(ov.key()) == ov
    with pytest.raises(ValueError, match="not an overlap choice"):
        Overlap.parse("sometimes")
    with pytest.raises(ValueError, match="launch op must be <="):
        Overlap.parse("window5-2")
    # the pre-#13 keys placed collectives without regard to data flow: refused, with the fix
    for old in ("start", "after2/sms=8"):
        with pytest.raises(ValueError, match="ignored data dependencies"):
            Overlap.parse(old)


def test_profile_roundtrip_and_validation(tmp_path):
    prof = make_profile()
    prof.save(tmp_path / "p.json")
    back = Profile.load(tmp_path / "p.json")
    assert back.entries == prof.entries and back.device == prof.device
    assert back.lookup(1, 1500, Overlap("serial")).time_s == pytest.approx(1.32e-3)
    assert len(back.to_frame()) == len(prof.entries)
    d = prof.to_json()
    d["entries"][0][1] = 1234
    with pytest.raises(FormatError, match="not a supported clock"):
        Profile.from_json(d)
    d = prof.to_json()
    d["entries"] = [e for e in d["entries"] if e[0] != 1]
    with pytest.raises(FormatError, match=r"partitions \[1\] have no options"):
        Profile.from_json(d)
    d = prof.to_json()
    d["entries"][0][3] = -1
    with pytest.raises(FormatError, match=r"entries\[0\].time_s.*must be > 0"):
        Profile.from_json(d)


def test_frontier_json_and_csv(tmp_path):
    fr = Frontier([FrontierPoint(1.0, 10.0, [Choice("p0", 1980)]),
                   FrontierPoint(1.2, 8.0, [Choice("s0/backward/3", 1500, Overlap("serial"))])],
                  energy_scope="gpu+blocking", baseline=FrontierPoint(1.0, 10.5))
    fr.save(tmp_path / "f.json")
    assert Frontier.load(tmp_path / "f.json") == fr
    fr.save(tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_text().splitlines()[0] == "time_s,energy_j"
    back = Frontier.load(tmp_path / "f.csv")
    assert [(p.time_s, p.energy_j) for p in back.points] == [(1.0, 10.0), (1.2, 8.0)]
    (tmp_path / "g.csv").write_text("time,energy\n1,2\n")
    with pytest.raises(FormatError, match="time_s,energy_j"):
        Frontier.load(tmp_path / "g.csv")


def make_schedule() -> Schedule:
    return Schedule([ScheduleEntry(0, 0, 1980, label="a"),
                     ScheduleEntry(1, 2, 1500, Overlap.window(0, 99, 16), "sig1", "b")],
                    model_signature="m1", device="sim-h100", num_kernels=6, objective="iso-time",
                    predicted={"time_s": 1.0, "energy_j": 9.0})


def test_schedule_roundtrip_keeps_unknown_fields(tmp_path):
    s = make_schedule()
    d = s.to_json()
    d["future_field"] = {"from": "a newer minor revision"}
    back = Schedule.from_json(d)
    assert back.entries == s.entries
    again = back.to_json()
    assert again["future_field"] == d["future_field"]
    s.save(tmp_path / "s.json")
    assert Schedule.load(tmp_path / "s.json").to_json() == s.to_json()


def test_schedule_refuses_other_model_or_device():
    s = make_schedule()
    s.check_compatible("m1", "sim-h100")
    with pytest.raises(ScheduleMismatchError, match="schedule m1, this model m2"):
        s.check_compatible("m2", "sim-h100")
    with pytest.raises(ScheduleMismatchError, match="'sim-a100'"):
        s.check_compatible("m1", "sim-a100")


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["entries"][1].__setitem__(1, 0), "not increasing"),
    (lambda d: d["entries"][0].__setitem__(2, "fast"), "must be integers"),
    (lambda d: d["entries"][1].__setitem__(3, "maybe"), "not an overlap choice"),
    (lambda d: d.pop("model_signature"), "model_signature"),
    (lambda d: d.update(objective="cheapest"), "objective"),
    (lambda d: d.update(entries=[]), "empty"),
])
def test_schedule_rejects_malformed(mutate, match):
    d = json.loads(json.dumps(make_schedule().to_json()))
    mutate(d)
    with pytest.raises(FormatError, match=match):
        Schedule.from_json(d)


def test_schedule_unsupported_clock():
    with pytest.raises(UnsupportedClockError, match="1500 MHz"):
        make_schedule().validate(supported_freqs_mhz={1980, 1005})
