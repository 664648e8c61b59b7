"""StageProfile: time and energy of one microbatch's forward/backward per stage and SM clock.

File format (the Perseus artifact's, and the ``gearshift plan`` contract's): a CSV with the
columns ``stage,instruction,frequency,time,energy`` (instruction forward|backward, frequency
in MHz, time in s, energy in J of one GPU), one row per (stage, instruction, frequency).
Zero-bubble schedules split a backward into backward_input (I) and backward_weight (W); a
profile may carry rows for both (then every stage needs both). When it has only forward and
backward, ``with_split`` derives them: I and W each take half of B's time and half of its
energy at every clock. That is the zero-bubble paper's working assumption (T_I ~ T_W; the
two halves of a backward are matrix products of the same sizes, one for the input gradient,
one for the weight gradient); profile I and W (``gearshift.pipelining.wrap`` measures them)
where it matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._csv import Row, read_rows, write_rows
from .order import INSTRUCTIONS

COLUMNS = ("stage", "instruction", "frequency", "time", "energy")


@dataclass
class StageProfile:
    """Dense arrays: ``time_s[stage, instr, k]`` at clock ``freqs_mhz[k]`` (ascending).

    Every (stage, instruction) has the same clocks (the loader checks), so one frequency axis
    serves all and a plan's clocks map to indices with one ``searchsorted``.
    """

    freqs_mhz: np.ndarray      # (F,) int64, ascending
    time_s: np.ndarray         # (S, K, F) float64; K = 2 (F, B) or 4 (F, B, I, W)
    energy_j: np.ndarray       # (S, K, F) float64
    source: str = ""           # where it came from (a path), for messages
    split: str = ""            # "" (no I/W), "measured" or "derived" (I = W = B/2)

    @property
    def stages(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def max_freq_mhz(self) -> int:
        return int(self.freqs_mhz[-1])

    @property
    def min_freq_mhz(self) -> int:
        return int(self.freqs_mhz[0])

    def curves(self, stage: int, instruction: str | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted ``(freqs_mhz, time_s, energy_j)`` of one (stage, instruction)."""
        k = instruction if isinstance(instruction, int) else INSTRUCTIONS.index(instruction)
        return self.freqs_mhz, self.time_s[stage, k], self.energy_j[stage, k]

    def freq_index(self, freqs_mhz) -> np.ndarray:
        """Indices of clocks on the frequency axis; FormatError naming the first unknown one."""
        f = np.asarray(freqs_mhz, dtype=np.int64)
        idx = np.searchsorted(self.freqs_mhz, f)
        idx_c = np.minimum(idx, len(self.freqs_mhz) - 1)
        bad = self.freqs_mhz[idx_c] != f
        if np.any(bad):
            first = int(f.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
            raise FormatError(self.source or None, "frequency",
                              f"{first} MHz is not in the stage profile "
                              f"({self.min_freq_mhz}..{self.max_freq_mhz} MHz, "
                              f"{len(self.freqs_mhz)} clocks)",
                              "use a clock the profile lists, or profile that clock")
        return idx_c

    def with_split(self) -> "StageProfile":
        """The profile with I and W: as given, or derived as half of B each (module doc)."""
        if self.time_s.shape[1] >= 4:
            return self
        t = np.concatenate([self.time_s, self.time_s[:, 1:2] / 2, self.time_s[:, 1:2] / 2], 1)
        e = np.concatenate([self.energy_j, self.energy_j[:, 1:2] / 2,
                            self.energy_j[:, 1:2] / 2], 1)
        return StageProfile(self.freqs_mhz.copy(), t, e, self.source, "derived")

    def for_stages(self, stages: int, stage_rank) -> "StageProfile":
        """A profile of ``stages`` model stages. A profile with one row set per model stage is
        used as is; one with a row set per rank (GPU) is split evenly over the stages each rank
        holds (virtual stages: each of a rank's V model chunks is a V-th of its layers, so
        it takes 1/V of the rank's time and energy). Otherwise FormatError."""
        if self.stages == stages:
            return self
        ranks = int(max(stage_rank)) + 1
        if self.stages != ranks:
            raise FormatError(self.source or None, "stage",
                              f"the stage profile has {self.stages} stages; the pipeline has "
                              f"{stages} model stages on {ranks} ranks",
                              f"profile {stages} stages (one per model stage) or {ranks} "
                              "(one per rank)")
        sr = np.asarray(stage_rank, dtype=np.int64)
        v = np.bincount(sr, minlength=ranks)[sr].astype(np.float64)[:, None, None]
        return StageProfile(self.freqs_mhz.copy(), self.time_s[sr] / v, self.energy_j[sr] / v,
                            self.source, self.split)

    def lookup(self, stage: int, instruction: str | int, freq_mhz: int) -> tuple[float, float]:
        k = instruction if isinstance(instruction, int) else INSTRUCTIONS.index(instruction)
        i = int(self.freq_index([freq_mhz])[0])
        return float(self.time_s[stage, k, i]), float(self.energy_j[stage, k, i])

    def scaled(self, time: float = 1.0, energy: float = 1.0) -> "StageProfile":
        """Multiply every time and energy (the Perseus emulation uses time x10, energy x80)."""
        for name, v in (("time", time), ("energy", energy)):
            if not (math.isfinite(v) and v > 0):
                raise FormatError(None, f"{name} scale", f"{v} is not a positive number",
                                  "pass a finite scale > 0")
        return StageProfile(self.freqs_mhz.copy(), self.time_s * time, self.energy_j * energy,
                            self.source, self.split)

    def restricted(self, min_freq_mhz: int = 0, max_freq_mhz: int | None = None) -> "StageProfile":
        keep = (self.freqs_mhz >= min_freq_mhz) & (
            self.freqs_mhz <= (max_freq_mhz if max_freq_mhz is not None else self.max_freq_mhz))
        return StageProfile(self.freqs_mhz[keep], self.time_s[..., keep],
                            self.energy_j[..., keep], self.source, self.split)

    def rows(self):
        """Rows of the file; derived I/W are not written (they follow from B)."""
        kinds = 2 if self.split == "derived" else self.time_s.shape[1]
        for s in range(self.stages):
            for k, name in enumerate(INSTRUCTIONS[:kinds]):
                for i in range(len(self.freqs_mhz) - 1, -1, -1):
                    yield s, name, int(self.freqs_mhz[i]), float(self.time_s[s, k, i]), \
                        float(self.energy_j[s, k, i])

    def save(self, path: str | Path) -> None:
        write_rows(path, COLUMNS, ([s, name, f, repr(t), repr(e)]
                                   for s, name, f, t, e in self.rows()))

    @classmethod
    def from_records(cls, records, source: str = "") -> "StageProfile":
        """Build from ``(stage, instruction, freq_mhz, time_s, energy_j)`` tuples (validated)."""
        return _build(list(records), source)


def load_stage_profile(path: str | Path, time_scale: float = 1.0,
                       energy_scale: float = 1.0) -> StageProfile:
    records = [_parse_row(row) for row in read_rows(
        path, COLUMNS, "stage profile",
        "a stage profile has the columns stage,instruction,frequency,time,energy",
        "write the header stage,instruction,frequency,time,energy and rows")]
    prof = _build(records, str(Path(path)))
    if time_scale != 1.0 or energy_scale != 1.0:
        prof = prof.scaled(time_scale, energy_scale)
    return prof


def _parse_row(row: Row):
    path, lineno = row.path, row.lineno

    def number(name, integer=False):
        text = row.cell(name)
        v = row.number(name, "write a number")
        if not math.isfinite(v):
            raise FormatError(path, row.where(name), f"{text} is not finite",
                              "write a finite number (re-measure that clock)")
        if integer and not float(v).is_integer():
            raise FormatError(path, row.where(name),
                              f"{text} is not a whole number of MHz", "write the clock in MHz")
        return v

    instr = row.cell("instruction").lower()
    if instr not in INSTRUCTIONS:
        raise FormatError(path, f"row {lineno} column 'instruction'",
                          f"'{instr}' is not an instruction",
                          "write forward, backward, backward_input or backward_weight")
    stage = number("stage", integer=True)
    freq = number("frequency", integer=True)
    t, e = number("time"), number("energy")
    if stage < 0:
        raise FormatError(path, f"row {lineno} column 'stage'", f"{stage:g} is negative",
                          "number stages 0, 1, ...")
    if freq <= 0:
        raise FormatError(path, f"row {lineno} column 'frequency'", f"{freq:g} MHz is not > 0",
                          "write the SM clock in MHz")
    if t <= 0:
        raise FormatError(path, f"row {lineno} column 'time'", f"{t!r} s is not > 0",
                          "a computation takes a positive time; re-measure it")
    if e < 0:
        raise FormatError(path, f"row {lineno} column 'energy'", f"{e!r} J is negative",
                          "energy is >= 0; re-measure it")
    return int(stage), instr, int(freq), t, e


def _build(records, source: str) -> StageProfile:
    path = source or None
    if not records:
        raise FormatError(path, "<rows>", "the stage profile has no rows",
                          "add one row per (stage, instruction, frequency)")
    table: dict[tuple[int, int], dict[int, tuple[float, float]]] = {}
    for stage, instr, freq, t, e in records:
        k = instr if isinstance(instr, int) else INSTRUCTIONS.index(instr)
        cell = table.setdefault((int(stage), k), {})
        if int(freq) in cell:
            raise FormatError(path, "<rows>",
                              f"stage {stage} {INSTRUCTIONS[k]} at {freq} MHz appears twice",
                              "keep one row per (stage, instruction, frequency)")
        cell[int(freq)] = (float(t), float(e))
    stages = max(s for s, _ in table) + 1
    kinds = 4 if any(k >= 2 for _, k in table) else 2
    for s in range(stages):
        for k in range(kinds):
            if (s, k) not in table:
                raise FormatError(path, "<rows>",
                                  f"stage {s} has no {INSTRUCTIONS[k]} rows "
                                  f"(stages 0..{stages - 1} are expected)",
                                  f"profile the {INSTRUCTIONS[k]} of stage {s}")
    all_freqs = sorted(set().union(*(set(c) for c in table.values())))
    for (s, k), cell in sorted(table.items()):
        lacking = [f for f in all_freqs if f not in cell]
        if lacking:
            shown = ", ".join(map(str, lacking[:6])) + (" ..." if len(lacking) > 6 else "")
            raise FormatError(path, "frequency",
                              f"stage {s} {INSTRUCTIONS[k]} lacks {len(lacking)} clock(s) that "
                              f"other (stage, instruction) pairs have: {shown} MHz",
                              "profile every (stage, instruction) at the same set of clocks, or "
                              "drop those clocks from the other rows")
    freqs = np.array(all_freqs, dtype=np.int64)
    time = np.empty((stages, kinds, len(freqs)))
    energy = np.empty_like(time)
    for (s, k), cell in table.items():
        for i, f in enumerate(all_freqs):
            time[s, k, i], energy[s, k, i] = cell[f]
    return StageProfile(freqs, time, energy, source, "measured" if kinds == 4 else "")
