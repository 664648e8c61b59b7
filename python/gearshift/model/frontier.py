"""Frontier: the Pareto set of (time_s, energy_j) with the choice behind every point."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError
from ._io import Fields, check_float, check_int, envelope, open_envelope, read_json, read_text, write_json
from .profile import MAX_FREQ_MHZ, NO_OVERLAP, Overlap

FRONTIER_VERSION = 1


@dataclass(frozen=True)
class Choice:
    """The option chosen for one unit: a partition ("p3") or a pipeline computation
    ("s2/backward/7": stage 2, backward of microbatch 7)."""

    unit: str
    freq_mhz: int
    overlap: Overlap = NO_OVERLAP


@dataclass
class FrontierPoint:
    time_s: float
    energy_j: float
    choices: list[Choice] = field(default_factory=list)


@dataclass
class Frontier:
    points: list[FrontierPoint]               # sorted by time, energy strictly decreasing
    energy_scope: str = "gpu"                 # what energy_j covers (gpu, gpu+blocking, node)
    source: str = "simulated"                 # measured | simulated | replayed
    baseline: FrontierPoint | None = None     # all-max-clock run
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)

    def fastest(self) -> FrontierPoint:
        return min(self.points, key=lambda p: (p.time_s, p.energy_j))

    def validate(self, path: str | None = None) -> "Frontier":
        if not self.points:
            raise FormatError(path, "points", "the frontier is empty", "run the search again")
        for i, p in enumerate(self.points):
            if not (p.time_s > 0 and p.energy_j >= 0):
                raise FormatError(path, f"points[{i}]", f"time_s={p.time_s}, energy_j={p.energy_j}",
                                  "time must be > 0 and energy >= 0")
        return self

    def to_json(self) -> dict:
        def pt(p: FrontierPoint) -> dict:
            return {"time_s": p.time_s, "energy_j": p.energy_j,
                    "choices": [[c.unit, c.freq_mhz, c.overlap.key()] for c in p.choices]}

        return envelope("frontier", FRONTIER_VERSION, {
            "energy_scope": self.energy_scope, "source": self.source, "meta": self.meta,
            "baseline": pt(self.baseline) if self.baseline else None,
            "points": [pt(p) for p in self.points]}, self.extra)

    @classmethod
    def from_json(cls, data, path: str | None = None) -> "Frontier":
        f = open_envelope(data, "frontier", FRONTIER_VERSION, path)

        def pt(sub: Fields) -> FrontierPoint:
            choices = []
            for j, c in enumerate(sub.list("choices")):
                if not (isinstance(c, list) and len(c) == 3):
                    raise sub.fail(f"choices[{j}]", f"expected [unit, freq_mhz, overlap], got {c!r}",
                                   "write three values per choice")
                try:
                    overlap = Overlap.parse(str(c[2]))
                except ValueError as exc:
                    raise sub.fail(f"choices[{j}]", str(exc), "regenerate the frontier") from exc
                freq = check_int(c[1], sub.failer(f"choices[{j}].freq_mhz"), minimum=1,
                                 maximum=MAX_FREQ_MHZ)
                choices.append(Choice(str(c[0]), freq, overlap))
            return FrontierPoint(sub.float("time_s", required=True, positive=True),
                                 sub.float("energy_j", required=True, nonnegative=True), choices)

        points = [pt(f.child("points", i, r)) for i, r in enumerate(f.list("points", required=True))]
        base = f.data.get("baseline")
        f.used.add("baseline")
        out = cls(points, f.str("energy_scope", "gpu"), f.str("source", "simulated"),
                  pt(f.child("baseline")) if base else None, f.dict("meta"))
        out.extra = {k: v for k, v in f.unknown().items() if k not in ("format", "version")}
        if out.meta.get("selected_index") is not None:  # the point a report marks
            f.child("meta", value=out.meta).int("selected_index", minimum=0,
                                                maximum=max(0, len(points) - 1))
        return out.validate(path)

    def save(self, path: str | Path) -> None:
        """``.csv`` writes the ``time_s,energy_j`` table; anything else the full JSON."""
        p = Path(path)
        if p.suffix.lower() == ".csv":
            p.parent.mkdir(parents=True, exist_ok=True)
            with p.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["time_s", "energy_j"])
                for pt in sorted(self.points, key=lambda q: q.time_s):
                    w.writerow([repr(pt.time_s), repr(pt.energy_j)])
        else:
            write_json(p, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Frontier":
        p = Path(path)
        if p.suffix.lower() == ".csv":
            try:
                rows = list(csv.DictReader(io.StringIO(read_text(p, "frontier CSV"), newline="")))
            except csv.Error as exc:
                raise FormatError(str(p), "<file>", f"is not a valid CSV ({exc})",
                                  "write the frontier with `gearshift plan --frontier-out x.csv`") \
                    from None
            if rows and not {"time_s", "energy_j"} <= set(rows[0]):
                raise FormatError(str(p), "<header>", f"columns are {list(rows[0])}",
                                  "a frontier CSV has the columns time_s,energy_j")
            pts = []
            for n, r in enumerate(rows, start=2):
                vals = []
                for key in ("time_s", "energy_j"):
                    def fail(problem, fix, key=key, n=n):
                        return FormatError(str(p), f"row {n} column '{key}'", problem, fix)
                    text = (r.get(key) or "").strip()
                    try:
                        v = float(text)
                    except ValueError:
                        raise fail(f"'{text[:40]}' is not a number", "write a number") from None
                    vals.append(check_float(v, fail, positive=key == "time_s",
                                            nonnegative=True))
                pts.append(FrontierPoint(vals[0], vals[1]))
            return cls(pts).validate(str(p))
        return cls.from_json(read_json(p), str(p))
