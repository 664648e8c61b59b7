"""The sole importer of the native extension ``gearshift._C``.

Importing this module does not import ``_C``; :func:`native` does, on first use, so that
``import gearshift`` stays lean. Nothing here opens CUDA, NVML or CUPTI until asked.
"""

from __future__ import annotations

import functools
import glob
import os
import sys
from types import ModuleType

from .errors import NativeUnavailableError


def _cupti_candidates() -> list[str]:
    """Where libcupti lives when it is not on the loader's path: PyTorch's CUDA wheels ship it
    in the ``nvidia`` pip packages (CUDA 13: nvidia/cu13/lib; 12: nvidia/cuda_cupti/lib), and a
    toolkit keeps it in extras/CUPTI/lib64. A copy already mapped into the process (torch's own)
    comes first: two CUPTIs in one process fight over the one subscriber slot."""
    try:
        with open("/proc/self/maps") as fh:
            mapped = [ln.split()[-1] for ln in fh if "/libcupti.so" in ln]
    except OSError:
        mapped = []
    found = list(dict.fromkeys(mapped))
    roots = [p for p in sys.path if p.endswith("site-packages")]
    for root in roots:
        for sub in ("nvidia/cu13/lib", "nvidia/cuda_cupti/lib", "nvidia/cu12/lib"):
            found += sorted(glob.glob(os.path.join(root, sub, "libcupti.so*")), reverse=True)
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            found += sorted(glob.glob(os.path.join(home, "extras/CUPTI/lib64/libcupti.so*")),
                            reverse=True)
    return [f for f in found if os.path.isfile(f)]


def _point_at_cupti() -> None:
    # The native loader tries GEARSHIFT_CUPTI_LIBRARY first, then libcupti.so.13/.12 by name;
    # by name finds nothing on a machine where only PyTorch's wheel brought CUPTI.
    if os.environ.get("GEARSHIFT_CUPTI_LIBRARY"):
        return
    candidates = _cupti_candidates()
    if candidates:
        os.environ["GEARSHIFT_CUPTI_LIBRARY"] = candidates[0]


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ModuleType | None, str]:
    _point_at_cupti()
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
