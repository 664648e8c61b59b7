"""Optional dependencies: one clear error when one is needed and not installed."""

from __future__ import annotations

from .errors import ConfigError

INSTALL = {"torch": "pip install 'gearshift[torch]' (or the torch build of your choice: "
                    "CPU or CUDA)"}


def missing(exc: ModuleNotFoundError, what: str) -> ConfigError | None:
    """The error to raise for ``exc`` when it is an optional dependency missing, else None."""
    top = (exc.name or "").split(".")[0]
    if top not in INSTALL:
        return None
    return ConfigError(f"{what} needs {top}, which is not installed", INSTALL[top])
