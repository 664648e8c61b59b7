"""Profile: time and energy of every partition under every candidate (clock, overlap) option."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError
from ._io import Fields, check_float, check_int, envelope, open_envelope, read_json, write_json

PROFILE_VERSION = 1
MAX_FREQ_MHZ = 100_000  # no SM clock is near 100 GHz: a larger number is a unit error
MAX_POWER_W = 100_000.0  # nor does one device draw 100 kW
SOURCES = ("measured", "simulated", "replayed")
_OVERLAP_RE = re.compile(r"^(none|serial|window(\d+)-(\d+))(?:/sms=(\d+))?(?:/block=(\d+))?$")
# keys written before overlap became dependency-true (issue #13): they placed collectives without
# regard to what they read, so a profile or schedule holding them has to be made again
_LEGACY_RE = re.compile(r"^(start|after\d+)(/sms=\d+)?$")
MODES = ("none", "serial", "window")


@dataclass(frozen=True, order=True)
class Overlap:
    """How a partition's collective runs against its compute (the shared contract).

    ``mode``: ``none`` (the partition has no collective), ``serial`` (Megatron's default: each
    collective runs alone right after its producer and its consumer waits for it) or ``window``:
    the collective of the *other* nanobatch is launched when compute op ``launch_op`` of the
    partition starts and must be complete by the end of compute op ``complete_op``
    (``launch_op <= complete_op``, 0-based over the compute ops that follow the collective in
    the partition; indices past the last op mean the last op). ``comm_sms``: CTAs/SMs of the
    communication kernel (0 = library default); ``block_size``: its threads per block (0 =
    library default). Data dependencies always win: a consumer of the collective waits for it
    whatever the window says. The string form ("serial", "window2-5/sms=12/block=512") is
    what files hold.
    """

    mode: str = "none"
    launch_op: int = 0
    complete_op: int = 0
    comm_sms: int = 0
    block_size: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"overlap mode '{self.mode}' is not one of {', '.join(MODES)}")
        if self.mode == "window" and not 0 <= self.launch_op <= self.complete_op:
            raise ValueError(f"window{self.launch_op}-{self.complete_op}: the launch op must be "
                             "<= the completion op")
        if self.comm_sms < 0 or self.block_size < 0:
            raise ValueError("comm_sms and block_size must be >= 0")

    @property
    def overlapped(self) -> bool:
        return self.mode == "window"

    def key(self) -> str:
        base = f"window{self.launch_op}-{self.complete_op}" if self.mode == "window" else self.mode
        if self.comm_sms:
            base += f"/sms={self.comm_sms}"
        if self.block_size:
            base += f"/block={self.block_size}"
        return base

    def __str__(self) -> str:
        return self.key()

    @classmethod
    def window(cls, launch_op: int, complete_op: int, comm_sms: int = 0,
               block_size: int = 0) -> "Overlap":
        return cls("window", launch_op, complete_op, comm_sms, block_size)

    @classmethod
    def parse(cls, text: str) -> "Overlap":
        t = text.strip()
        m = _OVERLAP_RE.match(t)
        if not m:
            if _LEGACY_RE.match(t):
                raise ValueError(f"'{text}' is an old overlap key that ignored data dependencies; "
                                 "use serial or window<L>-<C>[/sms=N][/block=B] (re-run "
                                 "`gearshift profile` and `gearshift plan`)")
            raise ValueError(f"'{text}' is not an overlap choice; expected none, serial or "
                             "window<L>-<C> (L <= C), optionally followed by /sms=N and /block=B")
        mode = "window" if m.group(2) is not None else m.group(1)
        if mode != "window" and (m.group(4) or m.group(5)) and mode == "none":
            raise ValueError(f"'{text}': a partition without a collective takes no /sms or /block")
        return cls(mode, int(m.group(2) or 0), int(m.group(3) or 0), int(m.group(4) or 0),
                   int(m.group(5) or 0))


NO_OVERLAP = Overlap()


@dataclass(frozen=True)
class DeviceFacts:
    name: str
    supported_freqs_mhz: tuple[int, ...]
    max_freq_mhz: int = 0
    static_power_w: float = 0.0   # paid every second the device is busy (leakage + board)
    idle_power_w: float = 0.0     # paid while waiting (pipeline blocking)
    tdp_w: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "supported_freqs_mhz", tuple(self.supported_freqs_mhz))
        if not self.max_freq_mhz and self.supported_freqs_mhz:
            object.__setattr__(self, "max_freq_mhz", max(self.supported_freqs_mhz))

    def to_json(self) -> dict:
        return {"name": self.name, "supported_freqs_mhz": list(self.supported_freqs_mhz),
                "max_freq_mhz": self.max_freq_mhz,
                "static_power_w": self.static_power_w, "idle_power_w": self.idle_power_w,
                "tdp_w": self.tdp_w}

    @classmethod
    def from_fields(cls, f: Fields) -> "DeviceFacts":
        freqs = f.list("supported_freqs_mhz", required=True)
        if not freqs or not all(isinstance(x, int) and not isinstance(x, bool)
                                and 0 < x <= MAX_FREQ_MHZ for x in freqs):
            raise f.fail("supported_freqs_mhz", "expected a non-empty list of positive integers "
                         f"up to {MAX_FREQ_MHZ}", "list the SM clocks in MHz, e.g. [1980, 1965, ...]")
        return cls(name=f.str("name", required=True), supported_freqs_mhz=tuple(freqs),
                   max_freq_mhz=f.int("max_freq_mhz", max(freqs), minimum=1, maximum=MAX_FREQ_MHZ),
                   static_power_w=f.float("static_power_w", 0.0, nonnegative=True, maximum=MAX_POWER_W),
                   idle_power_w=f.float("idle_power_w", 0.0, nonnegative=True, maximum=MAX_POWER_W),
                   tdp_w=f.float("tdp_w", 0.0, nonnegative=True, maximum=MAX_POWER_W))


@dataclass(frozen=True)
class ProfileEntry:
    partition: int
    freq_mhz: int
    overlap: Overlap
    time_s: float
    energy_j: float


@dataclass
class Profile:
    device: DeviceFacts
    entries: list[ProfileEntry]
    num_partitions: int
    partitioning_signature: str = ""
    source: str = "simulated"       # measured | simulated | replayed
    energy_scope: str = "gpu"       # what energy_j covers
    extra: dict = field(default_factory=dict)

    def options(self, partition: int) -> list[ProfileEntry]:
        return [e for e in self.entries if e.partition == partition]

    def by_partition(self) -> list[list[ProfileEntry]]:
        out: list[list[ProfileEntry]] = [[] for _ in range(self.num_partitions)]
        for e in self.entries:
            out[e.partition].append(e)
        return out

    def lookup(self, partition: int, freq_mhz: int, overlap: Overlap = NO_OVERLAP) -> ProfileEntry:
        for e in self.entries:
            if e.partition == partition and e.freq_mhz == freq_mhz and e.overlap == overlap:
                return e
        raise KeyError(f"partition {partition} has no option ({freq_mhz} MHz, {overlap})")

    def validate(self, path: str | None = None) -> "Profile":
        supported = set(self.device.supported_freqs_mhz)
        seen = set()
        for i, e in enumerate(self.entries):
            where = f"entries[{i}]"
            if not 0 <= e.partition < self.num_partitions:
                raise FormatError(path, where + ".partition",
                                  f"{e.partition} is outside 0..{self.num_partitions - 1}",
                                  "profile the partitioning this file names")
            if e.freq_mhz not in supported:
                raise FormatError(path, where + ".freq_mhz",
                                  f"{e.freq_mhz} MHz is not a supported clock of {self.device.name}",
                                  "profile only the clocks listed in device.supported_freqs_mhz")
            if not (e.time_s > 0 and e.energy_j >= 0):
                raise FormatError(path, where, f"time_s={e.time_s}, energy_j={e.energy_j}",
                                  "time must be > 0 and energy >= 0")
            key = (e.partition, e.freq_mhz, e.overlap)
            if key in seen:
                raise FormatError(path, where, f"duplicate option {key}", "keep one row per option")
            seen.add(key)
        missing = [p for p, opts in enumerate(self.by_partition()) if not opts]
        if missing:
            raise FormatError(path, "entries", f"partitions {missing[:5]} have no options",
                              "profile every partition")
        return self

    def to_json(self) -> dict:
        return envelope("profile", PROFILE_VERSION, {
            "device": self.device.to_json(), "num_partitions": self.num_partitions,
            "partitioning_signature": self.partitioning_signature, "source": self.source,
            "energy_scope": self.energy_scope,
            "columns": ["partition", "freq_mhz", "overlap", "time_s", "energy_j"],
            "entries": [[e.partition, e.freq_mhz, e.overlap.key(), e.time_s, e.energy_j]
                        for e in self.entries],
        }, self.extra)

    @classmethod
    def from_json(cls, data, path: str | None = None) -> "Profile":
        f = open_envelope(data, "profile", PROFILE_VERSION, path)
        device = DeviceFacts.from_fields(f.child("device"))
        f.used.update({"device", "columns"})
        entries = []
        for i, row in enumerate(f.list("entries", required=True)):
            if not (isinstance(row, list) and len(row) == 5):
                raise f.fail(f"entries[{i}]", f"expected [partition, freq_mhz, overlap, time_s, "
                             f"energy_j], got {row!r}", "write five values per entry")
            where = f"entries[{i}]"
            try:
                overlap = Overlap.parse(str(row[2]))
            except ValueError as exc:
                raise f.fail(where + ".overlap", str(exc), "regenerate the profile") from exc
            entries.append(ProfileEntry(
                check_int(row[0], f.failer(where + ".partition"), minimum=0),
                check_int(row[1], f.failer(where + ".freq_mhz"), minimum=1, maximum=MAX_FREQ_MHZ),
                overlap,
                check_float(row[3], f.failer(where + ".time_s"), positive=True),
                check_float(row[4], f.failer(where + ".energy_j"), nonnegative=True)))
        # declared before it is allocated (by_partition): every partition needs an entry
        num_partitions = f.int("num_partitions", required=True, minimum=1,
                               maximum=max(1, len(entries)))
        out = cls(device, entries, num_partitions,
                  f.str("partitioning_signature", ""),
                  f.str("source", "simulated", choices=SOURCES), f.str("energy_scope", "gpu"))
        out.extra = {k: v for k, v in f.unknown().items() if k not in ("format", "version")}
        listed = out.extra.get("freqs_mhz")  # the clocks profiled, written by gearshift profile
        if listed is not None and not (isinstance(listed, list) and all(
                isinstance(x, int) and not isinstance(x, bool) and 0 < x <= MAX_FREQ_MHZ
                for x in listed)):
            raise f.fail("freqs_mhz", f"expected a list of clocks in MHz, got {listed!r}"[:200],
                         "regenerate the profile")
        return out.validate(path)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        return cls.from_json(read_json(path), str(path))

    def to_frame(self):
        import pandas as pd  # noqa: PLC0415  (pandas only when a table is asked for)

        return pd.DataFrame([(e.partition, e.freq_mhz, e.overlap.key(), e.time_s, e.energy_j)
                             for e in self.entries],
                            columns=["partition", "freq_mhz", "overlap", "time_s", "energy_j"])
