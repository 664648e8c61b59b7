"""Schedule: the table the runtime enforces (partition -> SM clock + overlap choice)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError, ScheduleMismatchError
from ._io import Fields, check_float, check_int, envelope, open_envelope, read_json, write_json
from .profile import MAX_FREQ_MHZ, NO_OVERLAP, Overlap

SCHEDULE_VERSION = 1
MAX_NANOBATCHES = 64  # Kareus splits in 2; more than a few dozen is not a training step
OBJECTIVES = ("iso-time", "fastest", "iso-energy", "max-slowdown", "cost", "manual", "default")


def _predicted(f: Fields) -> dict:
    """``predicted`` holds the figures reports compute with: each pair complete, times > 0,
    energies >= 0 (baselines > 0: they divide), every number finite and in range."""
    pred = f.dict("predicted")
    sub = f.child("predicted", value=pred)
    for t_key, e_key, baseline in (("time_s", "energy_j", False),
                                   ("baseline_time_s", "baseline_energy_j", True)):
        if pred.get(t_key) is not None or pred.get(e_key) is not None:
            sub.float(t_key, required=True, positive=True)
            sub.float(e_key, required=True, positive=baseline, nonnegative=True)
    if pred.get("objective_arg") is not None:
        sub.float("objective_arg")
    stack = [(k, v) for k, v in pred.items()]
    while stack:  # the informational rest (passes, gains): no inf, NaN or 1e308 either
        key, v = stack.pop()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            check_float(v, sub.failer(key))
        elif isinstance(v, list):
            stack.extend((f"{key}[{i}]", x) for i, x in enumerate(v))
        elif isinstance(v, dict):
            stack.extend((f"{key}.{k}", x) for k, x in v.items())
    return pred


@dataclass(frozen=True)
class ScheduleEntry:
    partition: int
    start_kernel: int        # launch ordinal at which this partition begins
    freq_mhz: int
    overlap: Overlap = NO_OVERLAP
    signature: str = ""      # kernel-name signature the runtime checks against what it observes
    label: str = ""


@dataclass
class Schedule:
    entries: list[ScheduleEntry]
    model_signature: str             # signature of the traced kernel sequence it was made for
    device: str                      # device name it was profiled on, e.g. "NVIDIA H100 80GB HBM3"
    num_kernels: int
    objective: str = "manual"
    predicted: dict = field(default_factory=dict)  # time_s, energy_j, baseline_time_s, ...
    extra: dict = field(default_factory=dict)
    # nanobatches each microbatch is split into (1 = no split; Kareus uses 2); the trace the
    # schedule was planned on was split so, and its overlap windows pair one nanobatch's
    # collective with the other's compute
    nanobatches: int = 1

    def freqs_mhz(self) -> list[int]:
        return [e.freq_mhz for e in self.entries]

    def check_compatible(self, model_signature: str, device: str) -> None:
        """Refuse to enforce on another model or device, printing both sides."""
        problems = []
        if model_signature != self.model_signature:
            problems.append(f"model signature: schedule {self.model_signature}, "
                            f"this model {model_signature}")
        if device != self.device:
            problems.append(f"device: schedule '{self.device}', this device '{device}'")
        if problems:
            raise ScheduleMismatchError(
                "the schedule was made for another " +
                ("model" if model_signature != self.model_signature else "device") + " (" +
                "; ".join(problems) + ")",
                "re-plan for this model and device (gearshift.compile without a saved schedule, or "
                "`gearshift profile` + `gearshift plan`), or load the schedule made for it")

    def validate(self, path: str | None = None, supported_freqs_mhz=None) -> "Schedule":
        if not self.entries:
            raise FormatError(path, "entries", "the schedule is empty", "plan at least one partition")
        prev = -1
        for i, e in enumerate(self.entries):
            where = f"entries[{i}]"
            if e.partition != i:
                raise FormatError(path, where + ".partition", f"is {e.partition}, expected {i}",
                                  "list partitions in order 0, 1, 2, ...")
            if e.start_kernel <= prev or e.start_kernel >= self.num_kernels:
                raise FormatError(path, where + ".start_kernel",
                                  f"{e.start_kernel} is not increasing within 0..{self.num_kernels - 1}",
                                  "regenerate the schedule from its partitioning")
            if supported_freqs_mhz is not None and e.freq_mhz not in supported_freqs_mhz:
                from ..errors import UnsupportedClockError  # noqa: PLC0415

                raise UnsupportedClockError(
                    f"{where}: {e.freq_mhz} MHz is not a supported SM clock of {self.device}",
                    "plan with this device's supported clocks (see `gearshift info`)")
            prev = e.start_kernel
        if self.entries[0].start_kernel != 0:
            raise FormatError(path, "entries[0].start_kernel", "must be 0",
                              "the first partition starts at the first kernel")
        return self

    def to_json(self) -> dict:
        return envelope("schedule", SCHEDULE_VERSION, {
            "model_signature": self.model_signature, "device": self.device,
            "num_kernels": self.num_kernels, "objective": self.objective,
            "nanobatches": self.nanobatches, "predicted": self.predicted,
            "columns": ["partition", "start_kernel", "freq_mhz", "overlap", "signature", "label"],
            "entries": [[e.partition, e.start_kernel, e.freq_mhz, e.overlap.key(), e.signature,
                         e.label] for e in self.entries],
        }, self.extra)

    @classmethod
    def from_json(cls, data, path: str | None = None) -> "Schedule":
        f = open_envelope(data, "schedule", SCHEDULE_VERSION, path)
        f.used.add("columns")
        entries = []
        for i, row in enumerate(f.list("entries", required=True)):
            if not (isinstance(row, list) and len(row) == 6):
                raise f.fail(f"entries[{i}]", f"expected [partition, start_kernel, freq_mhz, overlap, "
                             f"signature, label], got {row!r}", "write six values per entry")
            if not all(isinstance(row[j], int) and not isinstance(row[j], bool) for j in (0, 1, 2)):
                raise f.fail(f"entries[{i}]", "partition, start_kernel and freq_mhz must be integers",
                             "write whole numbers (MHz for the clock)")
            check_int(row[2], f.failer(f"entries[{i}].freq_mhz"), minimum=1, maximum=MAX_FREQ_MHZ)
            try:
                ov = Overlap.parse(str(row[3]))
            except ValueError as exc:
                raise f.fail(f"entries[{i}].overlap", str(exc), "write a valid overlap choice") from exc
            entries.append(ScheduleEntry(row[0], row[1], row[2], ov, str(row[4]), str(row[5])))
        out = cls(entries, f.str("model_signature", required=True), f.str("device", required=True),
                  f.int("num_kernels", required=True, minimum=1),
                  f.str("objective", "manual", choices=OBJECTIVES), _predicted(f),
                  nanobatches=f.int("nanobatches", 1, minimum=1, maximum=MAX_NANOBATCHES))
        out.extra = {k: v for k, v in f.unknown().items() if k not in ("format", "version")}
        return out.validate(path)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Schedule":
        return cls.from_json(read_json(path), str(path))
