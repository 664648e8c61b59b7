"""Wrapping: ``gearshift.compile(model, config)`` and the ``torch.compile`` backend "gearshift".

Importing this package imports torch only through ``wrap``/``dynamo``, on first use.
"""

from .config import GearshiftConfig

__all__ = ["GearshiftConfig", "compile"]


def compile(model, config=None, **kwargs):  # noqa: A001
    try:
        from .wrap import compile as _compile  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        from .._deps import missing  # noqa: PLC0415

        raise (missing(exc, "gearshift.compile") or exc) from exc

    return _compile(model, config, **kwargs)
