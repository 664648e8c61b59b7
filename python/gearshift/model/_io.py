"""Versioned JSON envelopes and field validation shared by every data type.

A file is ``{"format": "gearshift.<kind>", "version": N, ...payload}``. A reader accepts every
version up to its own; fields it does not know are kept in ``extra`` and written back, so a file
from a newer minor revision survives a round trip through an older reader.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from ..errors import FormatError, VersionError


# Bounds every reader applies before a value reaches arithmetic or an allocation. They are far
# beyond any real quantity (a kernel of 1e18 FLOPs runs for minutes on any GPU) yet far enough
# below float overflow that sums and products of a few of them stay finite.
MAX_FILE_BYTES = 512 * 1024 * 1024   # a trace of a million kernels is ~300 MB of JSON
MAX_DEPTH = 64                       # the deepest gearshift file nests 5 levels
MAX_INT_DIGITS = 30                  # a JSON integer longer than this is not a count or a clock
MAX_INT = 2 ** 53                    # exactly representable as a float
MAX_FLOAT = 1e18


def check_int(v: Any, fail, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``v`` as an int (a bool is not one; a float only when whole), within the bounds.
    ``fail(problem, fix)`` builds the error to raise."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise fail(f"expected an integer, got {v!r}", "write a whole number")
    if isinstance(v, float):
        if not (math.isfinite(v) and v.is_integer()):
            raise fail(f"expected an integer, got {v!r}", "write a whole number")
        if abs(v) > MAX_INT:
            raise fail(f"{v!r} is out of range", f"use a whole number within +-{MAX_INT}")
        v = int(v)
    top = MAX_INT if maximum is None else maximum
    if minimum is not None and v < minimum:
        raise fail(f"{v} is below the minimum {minimum}", f"use a value >= {minimum}")
    if v > top or v < -MAX_INT:
        raise fail(f"{v} is out of range", f"use a value <= {top}")
    return v


def check_float(v: Any, fail, *, nonnegative: bool = False, positive: bool = False,
                maximum: float | None = None) -> float:
    """``v`` as a finite float (a bool or a string is not a number) within the bounds."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise fail(f"expected a number, got {v!r}", "write a number")
    try:
        v = float(v)
    except OverflowError:
        raise fail("is too large to be a number", "write a finite number") from None
    if not math.isfinite(v):
        raise fail(f"{v} is not finite", "write a finite number")
    if positive and v <= 0:
        raise fail(f"{v} must be > 0", "use a positive value")
    if nonnegative and v < 0:
        raise fail(f"{v} must be >= 0", "use a non-negative value")
    top = MAX_FLOAT if maximum is None else maximum
    if abs(v) > top:
        raise fail(f"{v} is out of range (at most {top:g} in magnitude)",
                   "write the quantity in the field's SI unit")
    return v


class Fields:
    """Typed access to one JSON object, with errors that name the field, the file and the fix."""

    def __init__(self, data: Any, path: str | None, prefix: str = ""):
        if not isinstance(data, dict):
            raise FormatError(path, prefix or "<root>", f"expected an object, got {type(data).__name__}",
                              "write a JSON object here")
        self.data = data
        self.path = path
        self.prefix = prefix
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str, fix: str) -> FormatError:
        return FormatError(self.path, self.name(key), problem, fix)

    def failer(self, key: str):
        """``fail`` bound to ``key``: what :func:`check_int` and :func:`check_float` take, for
        values read from a row rather than a named field."""
        return lambda problem, fix: self.fail(key, problem, fix)

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.fail(key, "is missing", f"add '{key}' to the file")
            return default
        return self.data[key]

    def str(self, key: str, default: str | None = None, *, required: bool = False,
            choices: Iterable[str] | None = None) -> str | None:
        v = self._get(key, default, required)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.fail(key, f"expected a string, got {v!r}", "quote the value")
        if choices is not None and v not in tuple(choices):
            raise self.fail(key, f"'{v}' is not one of {', '.join(choices)}",
                            f"use one of {', '.join(choices)}")
        return v

    def int(self, key: str, default: int | None = None, *, required: bool = False,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
        v = self._get(key, default, required)
        if v is None:
            return None
        return check_int(v, self.failer(key), minimum=minimum, maximum=maximum)

    def float(self, key: str, default: float | None = None, *, required: bool = False,
              nonnegative: bool = False, positive: bool = False,
              maximum: float | None = None) -> float | None:
        v = self._get(key, default, required)
        if v is None:
            return None
        return check_float(v, self.failer(key), nonnegative=nonnegative, positive=positive,
                           maximum=maximum)

    def list(self, key: str, *, required: bool = False) -> list:
        v = self._get(key, [], required)
        if not isinstance(v, list):
            raise self.fail(key, f"expected a list, got {type(v).__name__}", "write a JSON list")
        return v

    def dict(self, key: str, *, required: bool = False) -> dict:
        v = self._get(key, {}, required)
        if not isinstance(v, dict):
            raise self.fail(key, f"expected an object, got {type(v).__name__}", "write a JSON object")
        return v

    def child(self, key: str, index: int | None = None, value: Any = None) -> "Fields":
        label = self.name(key) + (f"[{index}]" if index is not None else "")
        return Fields(value if value is not None else self.data.get(key), self.path, label)

    def unknown(self) -> dict:
        return {k: v for k, v in self.data.items() if k not in self.used}


def envelope(kind: str, version: int, payload: dict, extra: dict | None = None) -> dict:
    out = {"format": f"gearshift.{kind}", "version": version}
    out.update(payload)
    for k, v in (extra or {}).items():
        out.setdefault(k, v)
    return out


def open_envelope(data: Any, kind: str, max_version: int, path: str | None) -> Fields:
    f = Fields(data, path)
    fmt = f.str("format", required=True)
    if fmt != f"gearshift.{kind}":
        raise FormatError(path, "format", f"this is a '{fmt}' file, not gearshift.{kind}",
                          f"pass a gearshift.{kind} file here")
    version = f.int("version", required=True, minimum=1)
    if version > max_version:
        raise VersionError(path, "version",
                           f"written by a newer gearshift (format version {version}; "
                           f"this one reads up to {max_version})",
                           "upgrade gearshift (`pip install -U gearshift`) to read it")
    return f


def _reject_constant(path: str):
    def reject(name: str):
        raise FormatError(path, "<file>", f"holds {name}, which is not a number JSON allows",
                          "write finite numbers only")
    return reject


def _parse_int(path: str):
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise FormatError(path, "<file>", f"holds an integer of {len(text)} digits",
                              f"no gearshift quantity needs more than {MAX_INT_DIGITS} digits")
        return int(text)
    return parse


def _parse_float(path: str):
    def parse(text: str) -> float:
        v = float(text)
        if not math.isfinite(v):
            raise FormatError(path, "<file>", f"holds {text[:40]}, which overflows a float",
                              "write finite numbers only")
        return v
    return parse


def _check_depth(data: Any, path: str) -> None:
    stack = [(data, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormatError(path, "<file>", f"nests deeper than {MAX_DEPTH} levels",
                              "gearshift files are shallow: regenerate the file with gearshift")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def read_text(path: str | Path, what: str = "file", limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a file, or one clear FormatError: missing, a folder, unreadable, too
    large (checked before reading), binary or not UTF-8."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FormatError(str(p), "<file>", "does not exist", f"check the path of the {what}") from None
    except OSError as exc:
        raise FormatError(str(p), "<file>", f"cannot be read ({exc.strerror or exc})",
                          f"check the path of the {what}") from None
    if not p.is_file():
        raise FormatError(str(p), "<file>", "is not a regular file", f"pass the {what} itself")
    if st.st_size > limit:
        raise FormatError(str(p), "<file>", f"is {st.st_size} bytes, more than the {limit} a "
                          f"{what} may have", f"check that this is a gearshift {what}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise FormatError(str(p), "<file>", f"cannot be read ({exc.strerror or exc})",
                          "check the file's permissions") from None
    if b"\0" in raw[:65536]:
        raise FormatError(str(p), "<file>", "is a binary file, not text",
                          f"pass the {what} (a text file) here")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(str(p), "<file>", f"is not UTF-8 text (byte {exc.start})",
                          f"pass a {what} written by gearshift, or re-save it as UTF-8") from None


def read_json(path: str | Path) -> Any:
    """A JSON file's value, refusing (one FormatError each) what no gearshift file holds:
    NaN/Infinity, numbers that overflow a float, integers of more than MAX_INT_DIGITS digits,
    nesting deeper than MAX_DEPTH, and the failures of :func:`read_text`."""
    p = str(path)
    text = read_text(path, "JSON file")
    try:
        data = json.loads(text, parse_constant=_reject_constant(p), parse_int=_parse_int(p),
                          parse_float=_parse_float(p))
    except json.JSONDecodeError as exc:
        raise FormatError(p, "<file>", f"is not valid JSON ({exc})",
                          "regenerate the file with gearshift, or fix the JSON syntax") from None
    except RecursionError:
        raise FormatError(p, "<file>", f"nests deeper than {MAX_DEPTH} levels",
                          "gearshift files are shallow: regenerate the file with gearshift") from None
    _check_depth(data, p)
    return data


def write_json(path: str | Path, data: dict) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(p)  # atomic: a crash never leaves a half-written schedule behind


def read_csv_frame(path: str | Path, what: str, columns: Iterable[str], hint: str,
                   numeric: Iterable[str] = ()):
    """A CSV file as a pandas DataFrame holding ``columns`` (more allowed), the ``numeric`` ones
    finite numbers within +-MAX_FLOAT; every failure is one FormatError naming row and column.
    For the CSVs users bring from elsewhere (Zeus logs, power samples)."""
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    p = str(path)
    text = read_text(path, what)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise FormatError(p, "<file>", f"is not a valid CSV ({str(exc).splitlines()[0]})",
                          hint) from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FormatError(p, "<header>", f"missing column(s) {', '.join(missing)} (found "
                          f"{', '.join(map(str, df.columns)) or 'nothing'})"[:300], hint)
    for c in numeric:
        text_col = df[c].str.strip()
        values = pd.to_numeric(text_col, errors="coerce").astype(float)
        bad = ~np.isfinite(values.to_numpy()) | (values.abs().to_numpy() > MAX_FLOAT)
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(p, f"row {i + 2} column '{c}'",
                              f"'{text_col.iloc[i][:40]}' is not a finite number within "
                              f"+-{MAX_FLOAT:g}", hint)
        df[c] = values
    return df


def read_published_csv(path: str | Path, what: str, columns: Iterable[str],
                       numeric: Iterable[str] = (), hint: str = ""):
    """A CSV of a published dataset (Zeus, Perseus) from a folder the user names: read like
    pandas would (types inferred, empty cells NaN, which these datasets use for "never"), but
    a binary, non-UTF-8 or unparsable file, a missing column, or text or an infinity in a
    ``numeric`` column is one FormatError."""
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    p = str(path)
    hint = hint or f"point at the folder holding the published {what}"
    text = read_text(path, what)
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise FormatError(p, "<file>", f"is not a valid CSV ({str(exc).splitlines()[0]})",
                          hint) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FormatError(p, "<header>", f"missing column(s) {', '.join(missing)}", hint)
    for c in numeric:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = (values.isna() & df[c].notna()) | np.isinf(values.astype(float))
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise FormatError(p, f"row {i + 2} column '{c}'",
                              f"'{str(df[c].iloc[i])[:40]}' is not a finite number", hint)
        df[c] = values
    return df
