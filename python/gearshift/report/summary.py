"""RunSummary: what a run with a schedule cost next to the baseline, as a versioned file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model._io import envelope, open_envelope, read_json, write_json

RUN_VERSION = 1


@dataclass
class RunPoint:
    """Per-iteration mean time and energy of one way of running."""

    time_s: float
    energy_j: float
    iterations: int = 1


@dataclass
class RunSummary:
    device: str
    source: str                      # measured | simulated | replayed
    energy_scope: str                # gpu | node ...
    gearshift: RunPoint
    baseline: RunPoint | None = None     # all partitions at the top clock, framework overlap
    objective: str = ""
    meta: dict = field(default_factory=dict)

    def energy_saving(self) -> float | None:
        if not self.baseline:
            return None
        return 1.0 - self.gearshift.energy_j / self.baseline.energy_j

    def slowdown(self) -> float | None:
        if not self.baseline:
            return None
        return self.gearshift.time_s / self.baseline.time_s

    def to_json(self) -> dict:
        def pt(p):
            return None if p is None else {"time_s": p.time_s, "energy_j": p.energy_j,
                                           "iterations": p.iterations}

        return envelope("run", RUN_VERSION, {
            "device": self.device, "source": self.source, "energy_scope": self.energy_scope,
            "objective": self.objective, "gearshift": pt(self.gearshift),
            "baseline": pt(self.baseline), "meta": self.meta})

    @classmethod
    def from_json(cls, data, path: str | None = None) -> "RunSummary":
        f = open_envelope(data, "run", RUN_VERSION, path)

        def pt(key, required):
            if f.data.get(key) is None and not required:
                f.used.add(key)
                return None
            sub = f.child(key)
            f.used.add(key)
            return RunPoint(sub.float("time_s", required=True, positive=True),
                            sub.float("energy_j", required=True, nonnegative=True),
                            sub.int("iterations", 1, minimum=1))

        return cls(f.str("device", required=True), f.str("source", "simulated"),
                   f.str("energy_scope", "gpu"), pt("gearshift", True), pt("baseline", False),
                   f.str("objective", ""), f.dict("meta"))

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "RunSummary":
        return cls.from_json(read_json(path), str(path))
