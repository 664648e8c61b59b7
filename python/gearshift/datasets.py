"""Where measured data sets live: a folder the user names, the project's shared data, or the
copy shipped inside the package (``gearshift/data/<dataset>/``, each with its SOURCE.md)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def packaged(dataset: str) -> Path:
    """The shipped copy of ``dataset`` (it exists in every install, wheel or editable)."""
    from importlib import resources  # noqa: PLC0415

    return Path(str(resources.files("gearshift") / "data" / dataset))


def data_root(dataset: str, explicit: str | os.PathLike | None = None) -> Path:
    """The folder that holds ``dataset/``: ``explicit`` if given, else $GEARSHIFT_SHARED_DATA,
    else ./shared/data or ../shared/data (a checkout of the project), else the package's copy."""
    if explicit is not None:
        return Path(explicit)
    for c in (os.environ.get("GEARSHIFT_SHARED_DATA"), "shared/data", "../shared/data"):
        if c and (Path(c) / dataset).is_dir():
            return Path(c)
    root = packaged(dataset).parent
    if not (root / dataset).is_dir():
        raise ConfigError(f"the data set {dataset} is neither in ../shared/data nor shipped in "
                          f"this install ({root})", "pass the folder holding it, or reinstall "
                          "gearshift")
    return root
