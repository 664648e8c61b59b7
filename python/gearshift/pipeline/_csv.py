"""Reading the pipeline's CSV files (stage profiles and plans): the header, the data rows and
their cells, with errors that name the file, row and column and say how to fix them."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..errors import FormatError
from ..model._io import MAX_FLOAT, read_text

_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


class Row:
    """One data row; ``cell``/``number`` read a column by name."""

    def __init__(self, path: str, lineno: int, values: list[str], col: dict[str, int]):
        self.path, self.lineno, self.values, self.col = path, lineno, values, col

    def where(self, name: str) -> str:
        return f"row {self.lineno} column '{name}'"

    def cell(self, name: str) -> str:
        if self.col[name] >= len(self.values):
            n = len(self.col)
            raise FormatError(self.path, self.where(name), "is missing",
                              f"give every row all {_COUNT_WORDS.get(n, n)} columns")
        return self.values[self.col[name]].strip()

    def number(self, name: str, hint: str) -> float:
        text = self.cell(name)
        try:
            v = float(text)
        except ValueError:
            raise FormatError(self.path, self.where(name), f"'{text[:40]}' is not a number",
                              hint) from None
        if not math.isfinite(v):
            raise FormatError(self.path, self.where(name), f"'{text[:40]}' is not finite",
                              "write a finite number")
        if abs(v) > MAX_FLOAT:
            raise FormatError(self.path, self.where(name),
                              f"'{text[:40]}' is out of range (at most {MAX_FLOAT:g} in magnitude)",
                              hint)
        return v


def read_rows(path, columns: tuple[str, ...], what: str, header_hint: str,
              empty_hint: str | None = None) -> list[Row]:
    """The non-blank data rows of the CSV at ``path``, which must have ``columns`` (any order,
    more allowed). ``what`` names the file's kind in errors; ``empty_hint``, when given, is the
    fix for a file without even a header (otherwise that reads as missing columns)."""
    p = Path(path)
    text = read_text(p, what)
    try:
        return _rows(p, csv.reader(io.StringIO(text, newline="")), columns, header_hint,
                     empty_hint)
    except csv.Error as exc:
        raise FormatError(str(p), "<file>", f"is not a valid CSV ({exc})", header_hint) from None


def _rows(p: Path, reader, columns, header_hint, empty_hint) -> list[Row]:
    header = next(reader, None)
    if header is None and empty_hint is not None:
        raise FormatError(str(p), "<header>", "the file is empty", empty_hint)
    header = [h.strip() for h in header or []]
    missing = [c for c in columns if c not in header]
    if missing:
        raise FormatError(str(p), "<header>",
                          f"missing column(s) {', '.join(missing)} "
                          f"(found {', '.join(header) or 'nothing'})", header_hint)
    col = {c: header.index(c) for c in columns}
    return [Row(str(p), lineno, row, col) for lineno, row in enumerate(reader, start=2)
            if row and any(x.strip() for x in row)]


def write_rows(path, columns: tuple[str, ...], rows) -> None:
    """Write ``columns`` as the header, then ``rows`` (creating the folder)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)
