"""The sole importer of the native extension ``gearshift._C``.

Importing this module does not import ``_C``; :func:`native` does, on first use, so that
``import gearshift`` stays lean. Nothing here opens CUDA, NVML or CUPTI until asked.
"""

from __future__ import annotations

import functools
from types import ModuleType

from .errors import NativeUnavailableError


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ModuleType | None, str]:
    try:
        from . import _C  # noqa: PLC0415  (deliberately lazy)
    except ImportError as exc:  # pragma: no cover - only on a broken install
        return None, str(exc)
    return _C, ""


def available() -> bool:
    return _load()[0] is not None


def why_unavailable() -> str:
    return _load()[1]


def native() -> ModuleType:
    """The extension module, or a clear error saying how to get it."""
    mod, err = _load()
    if mod is None:
        raise NativeUnavailableError(
            f"the native extension gearshift._C could not be imported ({err})",
            "reinstall gearshift from source with a C++17 compiler: `pip install .` "
            "(or `make test`, which builds it)",
        )
    return mod


def build_info() -> dict:
    return native().build_info().to_dict()


def library_status(name: str) -> dict:
    """Open one of 'cuda', 'nvml', 'cupti' through the native loader and report the outcome."""
    return native().library_status(name).to_dict()


def native_dir():
    """Folder holding the extension and its helper executables (gearshift-watchdog)."""
    from pathlib import Path  # noqa: PLC0415

    return Path(native().__file__).resolve().parent


def library_is_mapped(soname_prefix: str) -> bool:
    return bool(native().library_is_mapped(soname_prefix))
