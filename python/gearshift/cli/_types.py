"""Number options that cannot smuggle a non-finite or absurd value into the library.

click's ``float`` takes ``inf``, ``nan`` and ``1e400`` (which is inf), and its ``int`` takes
integers of any size; every ``type=float``/``type=int`` option of every subcommand is swapped for
the bounded types below when the command is loaded (:func:`harden`), so a new option is covered
without anyone remembering to. Options that know their own range say so with click's
``IntRange``/``FloatRange`` (also bounded here) or check it where they are used.
"""

from __future__ import annotations

import math
import re

import click

_DECIMAL = re.compile(r"[+-]?[0-9]+")

# Far beyond any count, clock, power or time a command takes, and small enough that arithmetic
# on a few of them stays finite and allocations stay refusable.
MAX_FLOAT = 1e15
MAX_INT = 2**31 - 1


class _Bounded(click.ParamType):
    """Wraps click's own type (a FloatRange/IntRange keeps its own bounds and messages)."""

    def __init__(self, inner: click.ParamType | None = None):
        self.inner = inner
        if inner is not None:
            self.name = inner.name

    def get_metavar(self, *args, **kwargs):
        return self.inner.get_metavar(*args, **kwargs) if self.inner is not None else None


class FiniteFloat(_Bounded):
    name = "float"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number", param, ctx)
        v = (self.inner or click.FLOAT).convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if abs(v) > MAX_FLOAT:
            self.fail(f"{value!r} is out of range (at most {MAX_FLOAT:g} in magnitude)", param, ctx)
        return v

    def __repr__(self) -> str:
        return f"FiniteFloat({self.inner!r})"


class BoundedInt(_Bounded):
    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not an integer", param, ctx)
        if isinstance(value, str):
            text = value.strip()
            if not _DECIMAL.fullmatch(text):  # int() would also take "1_0" and " 7 "
                self.fail(f"{value[:20]!r} is not a whole number", param, ctx)
            if len(text.lstrip("+-")) > 12:
                self.fail(f"'{text[:20]}...' ({len(text)} digits) is out of range", param, ctx)
        v = (self.inner or click.INT).convert(value, param, ctx)
        if abs(v) > MAX_INT:
            self.fail(f"{value!r} is out of range (at most {MAX_INT} in magnitude)", param, ctx)
        return v

    def __repr__(self) -> str:
        return f"BoundedInt({self.inner!r})"


def _bounded(t: click.ParamType) -> click.ParamType:
    if isinstance(t, (FiniteFloat, BoundedInt)):
        return t
    if isinstance(t, click.FloatRange):
        return FiniteFloat(t)
    if isinstance(t, click.IntRange):
        return BoundedInt(t)
    if isinstance(t, click.types.FloatParamType):
        return FiniteFloat()
    if isinstance(t, click.types.IntParamType):
        return BoundedInt()
    return t


def harden(cmd: click.Command) -> click.Command:
    """Swap every number option of ``cmd`` (and of its subcommands) for a bounded one."""
    for p in cmd.params:
        p.type = _bounded(p.type)
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            harden(sub)
    return cmd
