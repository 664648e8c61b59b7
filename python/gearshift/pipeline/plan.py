"""PipelinePlan: the SM clock of every computation (stage, instruction, microbatch).

CSV format (the ``gearshift plan`` contract): ``stage,instruction,microbatch,freq_mhz``, one row
per computation, instruction forward|backward (and backward_input|backward_weight for
zero-bubble schedules); stage is the model stage (with virtual stages, S x V of them).
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
    freq_mhz: np.ndarray       # (S, K, N) int64: [stage, instruction, microbatch]; K = 2 or 4,
    #                            0 where the schedule runs no such computation
    source: str = ""

    @property
    def stages(self) -> int:
        return int(self.freq_mhz.shape[0])

    @property
    def microbatches(self) -> int:
        return int(self.freq_mhz.shape[2])

    @classmethod
    def uniform(cls, stages: int, microbatches: int, freq_mhz: int,
                graph=None) -> "PipelinePlan":
        """Every computation at one clock (of ``graph``'s schedule when given)."""
        check_shape(stages, microbatches)
        if graph is not None:
            return cls(np.where(graph.used(), int(freq_mhz), 0).astype(np.int64))
        return cls(np.full((stages, 2, microbatches), int(freq_mhz), dtype=np.int64))

    def check(self, stages: int, microbatches: int, profile=None, graph=None) -> "PipelinePlan":
        """The plan covers exactly this pipeline (every computation of ``graph``'s schedule
        has a clock), with clocks the profile has."""
        path = self.source or None
        if self.stages != stages or self.microbatches != microbatches:
            raise FormatError(path, "<rows>",
                              f"the plan is for {self.stages} stages x {self.microbatches} "
                              f"microbatches, not {stages} x {microbatches}",
                              "pass the --stages/--microbatches the plan was made for, or "
                              "re-plan for this pipeline")
        if graph is not None:
            used = graph.used()
            k = self.freq_mhz.shape[1]
            if k < graph.kinds:
                raise FormatError(path, "instruction",
                                  f"the plan has no backward_input/backward_weight rows, the "
                                  f"{graph.kind} schedule runs them",
                                  "plan for this schedule (gearshift plan --pipeline ...)")
            if k > graph.kinds and np.any(self.freq_mhz[:, graph.kinds:] > 0):
                raise FormatError(path, "instruction",
                                  f"the plan has backward_input/backward_weight rows, the "
                                  f"{graph.kind} schedule runs none",
                                  "plan for this schedule (gearshift plan --pipeline ...)")
            freq = self.freq_mhz[:, :graph.kinds]
            absent = np.argwhere(used & (freq <= 0))
            if len(absent):
                shown = ", ".join(f"s{s}/{INSTRUCTIONS[i]}/{m}" for s, i, m in absent[:5])
                raise FormatError(path, "<rows>",
                                  f"{len(absent)} computation(s) of the {graph.kind} schedule "
                                  f"have no clock, e.g. {shown}",
                                  "give every computation the schedule runs a freq_mhz row")
            if k > graph.kinds:
                self.freq_mhz = np.ascontiguousarray(freq)
        if profile is not None:
            if profile.stages != stages:
                raise FormatError(profile.source or None, "stage",
                                  f"the stage profile has {profile.stages} stages, the pipeline "
                                  f"{stages}", "use the profile of this pipeline")
            f = self.freq_mhz
            profile.freq_index(f[f > 0] if graph is not None else f)
        return self

    def save(self, path: str | Path) -> None:
        k = self.freq_mhz.shape[1]
        write_rows(path, COLUMNS, ([s, name, m, int(self.freq_mhz[s, i, m])]
                                   for s in range(self.stages)
                                   for i, name in enumerate(INSTRUCTIONS[:k])
                                   for m in range(self.microbatches)
                                   if self.freq_mhz[s, i, m] > 0))

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
        split = any(i >= 2 for _, i, _ in cells)
        freq = np.zeros((S, 4 if split else 2, N), dtype=np.int64)
        for (s, i, m), f in cells.items():
            freq[s, i, m] = f
        # a split plan: every forward, and per (stage, microbatch) a B or an I and a W
        need = freq > 0 if split else np.ones(freq.shape, dtype=bool)
        if split:
            need[:, 0] = True
            whole = freq[:, 1] > 0
            need[:, 2] = need[:, 3] = ~whole
            need[:, 1] = whole | ((freq[:, 2] == 0) & (freq[:, 3] == 0))
        absent = np.argwhere(need & (freq == 0))
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
                          f"'{instr}' is not an instruction",
                          "write forward, backward, backward_input or backward_weight")
    key = (whole("stage", 0), INSTRUCTIONS.index(instr), whole("microbatch", 0))
    return key, whole("freq_mhz", 1)
