"""Numba policy in one place: caching, math flags and the decorator every kernel uses.

Kernels are compiled once and cached on disk. The cache lives beside the package when that folder
is writable (an editable or user install) and in ``~/.cache/kmq/numba`` otherwise; an explicit
``NUMBA_CACHE_DIR`` always wins. This module must be imported before numba itself.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(_PACKAGE_DIR / "_kernels", os.W_OK):
    _cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kmq" / "numba"
    os.environ["NUMBA_CACHE_DIR"] = str(_cache)

import numba  # noqa: E402  (the environment above must be set first)

#: Options shared by every kernel. ``fastmath`` stays off: k-means must be reproducible bit for bit
#: and the nearest-color search relies on exact comparisons.
JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def jit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with kmq's policy (cache on, no fastmath, GIL released)."""
    options = {**JIT_OPTIONS, "parallel": parallel, **kwargs}
    return numba.njit(*args, **options)


prange = numba.prange
