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
            minimum: int | None = None) -> int | None:
        v = self._get(key, default, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise self.fail(key, f"expected an integer, got {v!r}", "write a whole number")
        if minimum is not None and v < minimum:
            raise self.fail(key, f"{v} is below the minimum {minimum}", f"use a value >= {minimum}")
        return v

    def float(self, key: str, default: float | None = None, *, required: bool = False,
              nonnegative: bool = False, positive: bool = False) -> float | None:
        v = self._get(key, default, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(key, f"expected a number, got {v!r}", "write a number")
        v = float(v)
        if not math.isfinite(v):
            raise self.fail(key, f"{v} is not finite", "write a finite number")
        if positive and v <= 0:
            raise self.fail(key, f"{v} must be > 0", "use a positive value")
        if nonnegative and v < 0:
            raise self.fail(key, f"{v} must be >= 0", "use a non-negative value")
        return v

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


def read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.exists():
        raise FormatError(str(p), "<file>", "does not exist", "check the path")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(str(p), "<file>", f"is not valid JSON ({exc})",
                          "regenerate the file with gearshift, or fix the JSON syntax") from exc


def write_json(path: str | Path, data: dict) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(p)  # atomic: a crash never leaves a half-written schedule behind
