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
_OVERLAP_RE = re.compile(r"^(none|serial|start|after(\d+))(?:/sms=(\d+))?$")


@dataclass(frozen=True, order=True)
class Overlap:
    """How a partition's communication kernel runs against its compute.

    ``mode``: ``none`` (no communication in the partition), ``serial`` (after the compute),
    ``start`` (launched with the first compute kernel), ``after`` (after ``after_kernels``
    compute kernels). ``comm_sms``: SMs the communication kernel may occupy (0 = library default).
    The string form ("serial", "start/sms=16", "after3/sms=8") is what files hold.
    """

    mode: str = "none"
    after_kernels: int = 0
    comm_sms: int = 0

    def key(self) -> str:
        base = f"after{self.after_kernels}" if self.mode == "after" else self.mode
        return f"{base}/sms={self.comm_sms}" if self.comm_sms else base

    def __str__(self) -> str:
        return self.key()

    @classmethod
    def parse(cls, text: str) -> "Overlap":
        m = _OVERLAP_RE.match(text.strip())
        if not m:
            raise ValueError(f"'{text}' is not an overlap choice; expected none, serial, start, "
                             "or afterK, optionally followed by /sms=N")
        mode = "after" if m.group(2) is not None else m.group(1)
        return cls(mode, int(m.group(2) or 0), int(m.group(3) or 0))


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
