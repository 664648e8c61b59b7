"""What a plan optimises: one Objective type, parsed once, and the one Zeus cost.

Written forms (names are case-insensitive; spaces around ``=`` are ignored):

``iso-time``          least energy at the all-max-clock time (the frontier's baseline)
``fastest``           least energy at the frontier's fastest time
``iso-energy``        least time at the all-max-clock run's energy
``max-slowdown=X``    least energy with time <= X x the fastest time (1 <= X, finite)
``deadline=T``        least energy with time <= T seconds (0 < T, finite)
``cost=ETA``          least Zeus cost ``ETA*E + (1-ETA)*P_ref*T`` (0 <= ETA <= 1)

``gearshift.compile(objective=...)``, ``GearshiftConfig``, ``gearshift plan --select``, the
search and the tuners all go through ``Objective.parse``, so they accept and refuse the same
things with the same one-line errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

KINDS = ("iso-time", "fastest", "iso-energy", "max-slowdown", "deadline", "cost")
_VALUED = {"max-slowdown": "1.05", "deadline": "0.5", "cost": "0.5"}
CHOICES = ("iso-time, fastest, iso-energy, max-slowdown=X (X >= 1, e.g. 1.05), deadline=T "
           "(seconds per iteration, e.g. 0.5) or cost=ETA (0 <= ETA <= 1, weight of energy "
           "against time)")


def zeus_cost(energy_j: float, time_s: float, eta: float, reference_power_w: float) -> float:
    """The Zeus time-energy cost ``eta * E + (1 - eta) * P_ref * T``, in joules.

    ``P_ref`` turns time into joules so both terms share a unit (Zeus uses the highest power
    limit; a frontier uses the all-max run's average power). eta=1: energy only, 0: time only.
    """
    return eta * energy_j + (1.0 - eta) * reference_power_w * time_s


def check_eta(eta) -> float:
    """``eta`` as a float in [0, 1]; a one-line ConfigError for anything else."""
    if isinstance(eta, bool):
        raise ConfigError(f"eta must be a number in [0, 1], got {eta!r}",
                          "use 0 to minimise time, 1 to minimise energy, 0.5 to weigh both")
    try:
        v = float(eta)
    except (TypeError, ValueError):
        v = math.nan
    if not 0.0 <= v <= 1.0:   # also refuses nan
        raise ConfigError(f"eta must lie in [0, 1], got {eta!r}",
                          "use 0 to minimise time, 1 to minimise energy, 0.5 to weigh both")
    return v


@dataclass(frozen=True)
class Objective:
    kind: str                    # one of KINDS
    value: float | None = None   # X, T (seconds) or ETA for the valued kinds

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown objective '{self.kind}'", f"use {CHOICES}")
        if (self.kind in _VALUED) != (self.value is not None):
            raise ConfigError(f"objective '{self.kind}' "
                              + ("needs a value" if self.kind in _VALUED else "takes no value"),
                              f"write {self._example()}")
        if self.value is not None:
            try:
                v = self._check_value(self.kind, self.value)
            except ConfigError as exc:   # say which setting was refused, in one line
                raise ConfigError(f"objective {self.kind}={self.value!r}: {exc.problem}",
                                  exc.fix) from None
            object.__setattr__(self, "value", v)

    @classmethod
    def parse(cls, text) -> "Objective":
        """An Objective from its written form (or itself); a one-line ConfigError otherwise."""
        if isinstance(text, Objective):
            return text
        if not isinstance(text, str):
            raise ConfigError(f"objective {text!r} is not text", f"use {CHOICES}")
        kind, eq, arg = text.strip().lower().partition("=")
        kind, arg = kind.strip(), arg.strip()
        if kind not in KINDS:
            raise ConfigError(f"unknown objective '{text}'", f"use {CHOICES}")
        if kind in _VALUED and not arg:
            raise ConfigError(f"objective '{kind}' needs a value", f"write {kind}={_VALUED[kind]}")
        if kind not in _VALUED and eq:
            raise ConfigError(f"objective '{kind}' takes no value (got '{text.strip()}')",
                              f"write {kind}")
        if kind not in _VALUED:
            return cls(kind)
        try:
            v = float(arg)
        except ValueError:
            raise ConfigError(f"'{arg}' in objective '{text}' is not a number",
                              f"write {kind}={_VALUED[kind]}") from None
        return cls(kind, v)

    @staticmethod
    def _check_value(kind: str, v) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError("it needs a number",
                              f"write {kind}={_VALUED[kind]}")
        v = float(v)
        if kind == "cost":
            return check_eta(v)
        if not math.isfinite(v):
            raise ConfigError("it is not a finite number",
                              f"write {kind}={_VALUED[kind]}")
        if kind == "max-slowdown" and v < 1.0:
            raise ConfigError("it is below 1 (it is a factor on the fastest time)",
                              "write max-slowdown=1.05 for at most 5% slower than the fastest "
                              "point")
        if kind == "deadline" and v <= 0.0:
            raise ConfigError("it is not a positive time",
                              "write deadline=<seconds per iteration>, e.g. deadline=0.5")
        return v

    def _example(self) -> str:
        return f"{self.kind}={_VALUED[self.kind]}" if self.kind in _VALUED else self.kind

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:.12g}"


def parse_objective(text) -> Objective:
    return Objective.parse(text)
