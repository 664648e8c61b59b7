"""GearshiftConfig: what ``gearshift.compile`` does, as a frozen, JSON round-trippable value."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..config import validate_device
from ..errors import ConfigError, FormatError
from ..objective import Objective

CONFIG_VERSION = 1


def _check_json_type(path: str | None, annotation: str, key: str, v) -> None:
    """A config file's value has its field's JSON type (a bool is not a number here); the
    type is read from the field's annotation, so a new field is checked too."""
    if v is None and "None" in annotation:
        return
    if annotation.startswith("bool"):
        ok, want = isinstance(v, bool), "true or false"
    elif annotation.startswith("int"):
        ok, want = isinstance(v, int) and not isinstance(v, bool), "a whole number"
    elif annotation.startswith("float"):
        ok, want = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
    elif annotation.startswith("tuple"):
        ok, want = isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"
    elif annotation.startswith("str"):
        ok, want = isinstance(v, str), "a string"
    else:
        return
    if not ok:
        raise FormatError(path, key, f"expected {want}, got {v!r}"[:200], f"write {want}")


@dataclass(frozen=True)
class GearshiftConfig:
    """- ``objective``: iso-time | fastest | iso-energy | max-slowdown=X | deadline=T | cost=ETA
      (``gearshift.objective``; stored in its canonical written form, e.g. ``ISO-TIME`` -> ``iso-time``).
    - ``device``: auto | sim | nvml | dry-run | daemon:/path.sock (any kind the device registry
      knows, ``gearshift.devices``). With ``daemon:``, a ``sim_preset`` prices time and energy on
      the simulated GPU while the daemon switches the clocks.
    - ``sim_preset``: the simulated GPU (h100-sxm, a100-sxm, a40); None = GEARSHIFT_SIM_PRESET.
    - ``schedule_path``: load the schedule from here if the file exists (after checking it was
      made for this model and device), else plan and save it here.
    - ``artifacts_dir``: where planning also writes trace, partitioning, profile and frontier.
    - ``min_freq_mhz`` / ``freq_step_mhz`` / ``overlaps``: the profiled options.
    - ``nanobatches``: split each microbatch into this many nanobatches whose collectives can
      overlap the other nanobatches' computation (Kareus: 2); the step is traced, profiled and
      planned split, and the schedule asks the overlap pass for the split.
    - ``progress``: show progress bars (and the plan's summary) while planning.
    - ``trace_device``: where the step is traced: ``auto`` (weights on meta, inputs and masks
      real; a real step on a CPU copy when the step needs a value computed from the weights),
      ``meta`` or ``cpu``.
    - ``strict``: raise what fails inside gearshift instead of falling back to running the
      step untouched with a warning (for tests and CI).
    """

    objective: str = "iso-time"
    device: str = "auto"
    sim_preset: str | None = None
    schedule_path: str | None = None
    artifacts_dir: str | None = None
    min_freq_mhz: int | None = None
    freq_step_mhz: int | None = None
    overlaps: tuple[str, ...] | None = None
    nanobatches: int = 1
    progress: bool = True
    trace_device: str = "auto"
    strict: bool = False

    def __post_init__(self):
        if self.trace_device not in ("auto", "meta", "cpu"):
            raise ConfigError(f"unknown trace_device {self.trace_device!r}",
                              "use trace_device='auto' (default), 'meta' or 'cpu'")
        object.__setattr__(self, "objective", str(Objective.parse(self.objective)))
        validate_device(self.device)
        if self.overlaps is not None:
            object.__setattr__(self, "overlaps", tuple(self.overlaps))
        from ..model.schedule import MAX_NANOBATCHES  # noqa: PLC0415

        if (not isinstance(self.nanobatches, int) or isinstance(self.nanobatches, bool)
                or not 1 <= self.nanobatches <= MAX_NANOBATCHES):
            raise ConfigError(f"nanobatches={self.nanobatches!r} must be a whole number from 1 to "
                              f"{MAX_NANOBATCHES}", "set nanobatches=2 (Kareus) or 1 (no split)")
        for name in ("min_freq_mhz", "freq_step_mhz"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                                  or not 0 < v <= 100_000):
                raise ConfigError(f"{name}={v!r} must be a positive whole number of MHz "
                                  "(at most 100000)",
                                  f"set {name} to e.g. 900, or leave it None")

    def replace(self, **changes) -> "GearshiftConfig":
        from dataclasses import replace  # noqa: PLC0415

        return replace(self, **changes)

    def to_json(self) -> dict:
        d = asdict(self)
        d["overlaps"] = list(self.overlaps) if self.overlaps is not None else None
        return {"format": "gearshift.config", "version": CONFIG_VERSION, **d}

    @classmethod
    def from_json(cls, data: dict, path: str | None = None) -> "GearshiftConfig":
        if not isinstance(data, dict) or data.get("format") != "gearshift.config":
            raise FormatError(path, "format", "this is not a gearshift.config object",
                              "write {\"format\": \"gearshift.config\", \"version\": 1, ...}")
        version = data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise FormatError(path, "version", f"expected a positive integer, got {version!r}",
                              f"write \"version\": {CONFIG_VERSION}")
        if version > CONFIG_VERSION:
            raise FormatError(path, "version", f"version {data['version']} is newer than "
                              f"{CONFIG_VERSION}", "upgrade gearshift")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"format", "version"}
        if unknown:
            raise FormatError(path, sorted(unknown)[0], "is not a config field",
                              f"use only {', '.join(sorted(known))}")
        kw = {k: v for k, v in data.items() if k in known}
        types = {f.name: str(f.type) for f in fields(cls)}
        for k, v in kw.items():
            _check_json_type(path, types[k], k, v)
        if kw.get("overlaps") is not None:
            kw["overlaps"] = tuple(kw["overlaps"])
        return cls(**kw)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "GearshiftConfig":
        from ..model._io import read_json  # noqa: PLC0415

        return cls.from_json(read_json(path), str(path))
