"""PipelinePlan: the SM clock of every computation (stage, instruction, microbatch).

CSV format (the ``gearshift plan`` contract): ``stage,instruction,microbatch,freq_mhz``, one row
per computation, instruction forward|backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._csv import Row, read_rows, write_rows
from .order import INSTRUCTIONS, check_shape

COLUMNS = ("stage", "instruction", "microbatch", "freq_mhz")


@dataclass
class PipelinePlan:
    freq_mhz: np.ndarray       # (S, 2, N) int64: [stage, instruction, microbatch]
    source: str = ""

    @property
    def stages(self) -> int:
        return int(self.freq_mhz.shape[0])

    @property
    def microbatches(self) -> int:
        return int(self.freq_mhz.shape[2])

    @classmethod
    def uniform(cls, stages: int, microbatches: int, freq_mhz: int) -> "PipelinePlan":
        check_shape(stages, microbatches)
        return cls(np.full((stages, 2, microbatches), int(freq_mhz), dtype=np.int64))

    def check(self, stages: int, microbatches: int, profile=None) -> "PipelinePlan":
        """The plan covers exactly this pipeline, with clocks the profile has."""
        path = self.source or None
        if self.stages != stages or self.microbatches != microbatches:
            raise FormatError(path, "<rows>",
                              f"the plan is for {self.stages} stages x {self.microbatches} "
                              f"microbatches, not {stages} x {microbatches}",
                              "pass the --stages/--microbatches the plan was made for, or "
                              "re-plan for this pipeline")
        if profile is not None:
            if profile.stages != stages:
                raise FormatError(profile.source or None, "stage",
                                  f"the stage profile has {profile.stages} stages, the pipeline "
                                  f"{stages}", "use the profile of this pipeline")
            profile.freq_index(self.freq_mhz)
        return self

    def save(self, path: str | Path) -> None:
        write_rows(path, COLUMNS, ([s, name, m, int(self.freq_mhz[s, k, m])]
                                   for s in range(self.stages)
                                   for k, name in enumerate(INSTRUCTIONS)
                                   for m in range(self.microbatches)))

    @classmethod
    def load(cls, path: str | Path, stages: int | None = None,
             microbatches: int | None = None) -> "PipelinePlan":
        """Read a plan CSV; with ``stages``/``microbatches`` every computation must be present."""
        cells: dict[tuple[int, int, int], int] = {}
        for row in read_rows(path, COLUMNS, "plan", "a plan has the columns "
                             "stage,instruction,microbatch,freq_mhz"):
            key, f = _parse_row(row)
            if key in cells:
                raise FormatError(row.path, f"row {row.lineno}",
                                  f"stage {key[0]} {INSTRUCTIONS[key[1]]} microbatch {key[2]} "
                                  "appears twice", "keep one row per computation")
            cells[key] = f
        return cls.from_cells(cells, stages, microbatches, str(Path(path)))

    @classmethod
    def from_cells(cls, cells: dict, stages: int | None = None, microbatches: int | None = None,
                   source: str = "") -> "PipelinePlan":
        path = source or None
        if not cells:
            raise FormatError(path, "<rows>", "the plan has no rows",
                              "write one row per (stage, instruction, microbatch)")
        S = stages if stages is not None else max(k[0] for k in cells) + 1
        N = microbatches if microbatches is not None else max(k[2] for k in cells) + 1
        check_shape(S, N)
        outside = [k for k in cells if k[0] >= S or k[2] >= N]
        if outside:
            s, i, m = outside[0]
            raise FormatError(path, "<rows>",
                              f"stage {s} {INSTRUCTIONS[i]} microbatch {m} is outside the pipeline "
                              f"({S} stages x {N} microbatches)",
                              "pass the --stages/--microbatches the plan was made for")
        freq = np.zeros((S, 2, N), dtype=np.int64)
        for (s, i, m), f in cells.items():
            freq[s, i, m] = f
        absent = np.argwhere(freq == 0)
        if len(absent):
            shown = ", ".join(f"s{s}/{INSTRUCTIONS[i]}/{m}" for s, i, m in absent[:5])
            raise FormatError(path, "<rows>",
                              f"{len(absent)} computation(s) have no clock, e.g. {shown}",
                              "give every (stage, instruction, microbatch) a freq_mhz row")
        return cls(freq, source)


def _parse_row(row: Row):
    def whole(name, minimum):
        text = row.cell(name)
        v = row.number(name, "write a whole number")
        if not (math.isfinite(v) and v.is_integer() and v >= minimum):
            raise FormatError(row.path, row.where(name),
                              f"{text} is not a whole number >= {minimum}",
                              "write a whole number" + (" of MHz" if name == "freq_mhz" else ""))
        return int(v)

    instr = row.cell("instruction").lower()
    if instr not in INSTRUCTIONS:
        raise FormatError(row.path, row.where("instruction"),
                          f"'{instr}' is not an instruction", "write forward or backward")
    key = (whole("stage", 0), INSTRUCTIONS.index(instr), whole("microbatch", 0))
    return key, whole("freq_mhz", 1)
