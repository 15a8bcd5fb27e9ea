"""Numba policy in one place: caching, math flags, the decorator every kernel uses, and how many
threads the kernels run on.

Kernels are compiled once and cached on disk. The cache lives beside the package when that folder
is writable (an editable or user install) and in ``~/.cache/kmq/numba`` otherwise; an explicit
``NUMBA_CACHE_DIR`` always wins. A change of any kernel source drops the whole cache of the
kernels (:func:`forget_stale_kernels`). This module must be imported before numba itself;
importing it does not import numba (the first kernel does), so that :func:`set_threads` can
still size numba's thread pool in a new worker process.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(_PACKAGE_DIR / "_kernels", os.W_OK):
    _cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kmq" / "numba"
    os.environ["NUMBA_CACHE_DIR"] = str(_cache)

#: Options shared by every kernel. ``fastmath`` stays off: k-means must be reproducible bit for bit
#: and the nearest-color search relies on exact comparisons.
JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

#: The variable numba sizes its thread pool by, read once when numba is imported.
THREADS_VARIABLE = "NUMBA_NUM_THREADS"


#: Start numba without the packages of :data:`HIDDEN_FROM_NUMBA` (set by the ``kmq`` command,
#: see :func:`start_numba`).
NUMBA_WITHOUT_UNUSED = False
#: Packages numba imports at start-up when installed and kmq's kernels never use: scipy (a
#: version check, and ``scipy.linalg``'s BLAS for ``np.dot``/``np.linalg`` in compiled code,
#: about 0.2 s) and cffi (calling cffi functions from compiled code; cffi builds its C parser,
#: about 0.04 s).
HIDDEN_FROM_NUMBA = ("scipy", "cffi")
_start_lock = threading.Lock()
_started = False


def start_numba():
    """Import numba and set up its CPU target once; returns the numba module.

    With :data:`NUMBA_WITHOUT_UNUSED` set, the packages of :data:`HIDDEN_FROM_NUMBA` are hidden
    from numba while it starts, so it does without them: they stay importable afterwards, but
    numba's ``np.dot``, ``np.linalg`` and cffi support in compiled code are off for the process.
    The ``kmq`` command sets it; the library leaves it off, since a program using kmq may
    compile its own linear algebra or cffi calls with numba.
    """
    global _started
    with _start_lock:
        if _started:
            return sys.modules["numba"]
        hidden = []
        if NUMBA_WITHOUT_UNUSED and "numba" not in sys.modules:
            hidden = [name for name in HIDDEN_FROM_NUMBA if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # import NAME: ImportError
        try:
            import numba
            from numba.core.registry import cpu_target

            cpu_target.target_context.refresh()  # numba's own modules, which look for them
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]
        _started = True
        return numba


def start_numba_without_unused() -> None:
    """Set :data:`NUMBA_WITHOUT_UNUSED` (for the ``kmq`` command, before its first kernel)."""
    global NUMBA_WITHOUT_UNUSED
    NUMBA_WITHOUT_UNUSED = True


def jit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with kmq's policy (cache on, no fastmath, GIL released), used as
    ``@jit`` or ``@jit(option=...)``; the first kernel of a source folder checks that folder's
    cache (:func:`forget_stale_kernels`)."""
    numba = start_numba()

    compile_ = numba.njit(**{**JIT_OPTIONS, "parallel": parallel, **kwargs})
    if args:  # @jit, or jit(function)
        (function,) = args
        return _checked(compile_(function))
    return lambda function: _checked(compile_(function))


#: Beside numba's cache files of a kernel folder: the digest of the sources they came from.
SOURCES_STAMP = "kmq-kernel-sources.sha256"
_checked_folders: set[str] = set()
_check_lock = threading.Lock()


def _checked(dispatcher):
    cache = getattr(dispatcher, "_cache", None)  # numba's FunctionCache, when caching is on
    folder = getattr(cache, "_cache_path", None)
    if folder is None:
        return dispatcher
    with _check_lock:
        if folder not in _checked_folders:
            _checked_folders.add(folder)
            forget_stale_kernels(folder, Path(dispatcher.py_func.__code__.co_filename).parent)
    return dispatcher


def sources_digest(source_folder: Path) -> str:
    """SHA-256 over the names and contents of the ``.py`` files of ``source_folder``."""
    digest = hashlib.sha256()
    for path in sorted(source_folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def forget_stale_kernels(cache_folder, source_folder: Path) -> None:
    """Remove numba's cache files from ``cache_folder`` unless they were compiled from the
    kernel sources now in ``source_folder``.

    numba keys a cached kernel by the contents of its own file only: a kernel that calls or
    inlines a helper of another file (``kmq._kernels.radix``) would keep loading the old
    helper after that file changed (an upgrade, an edit). So the cache of a kernel folder
    holds :data:`SOURCES_STAMP`, the digest of every source file of the folder, and any change
    of them drops the whole cache: the kernels compile again. A process that already loaded
    its kernels keeps them; numba recompiles a kernel whose files vanish under it.
    """
    digest = sources_digest(source_folder)
    stamp = Path(cache_folder) / SOURCES_STAMP
    try:
        if stamp.read_text() == digest:
            return
    except OSError:  # none yet, or unreadable: the cache cannot be trusted
        pass
    try:
        entries = list(os.scandir(cache_folder))
    except OSError:
        entries = []
    for entry in entries:
        if entry.name.endswith((".nbi", ".nbc")):
            try:
                os.unlink(entry.path)
            except OSError:
                pass
    try:
        temp = stamp.with_name(f"{stamp.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temp.write_text(digest)
        os.replace(temp, stamp)
    except OSError:  # a read-only cache: numba writes nothing there either
        pass


def __getattr__(name: str):
    if name == "prange":  # numba's, for the kernels: imported with the first of them
        return start_numba().prange
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_threads(workers: int) -> int:
    """numba threads for each of ``workers`` processes sharing this machine: the CPUs shared
    out, at least one each."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that give a process started with them ``threads`` numba
    threads (for workers that another library starts, such as Dask's)."""
    return {THREADS_VARIABLE: str(int(threads))}


def set_threads(threads: int | None) -> None:
    """Run kmq's kernels on at most ``threads`` threads in this process (``None`` or 0: leave
    numba's count alone). kmq's own k-means threads follow numba's count.

    Before numba is imported this sizes numba's thread pool (:data:`THREADS_VARIABLE`), which
    bounds every thread of the process and the processes it starts; a worker process calls it
    first thing. Once numba is imported its count can only be lowered, and only for the calling
    thread (numba keeps it per thread): this sets the caller's, within the pool's size.

    Examples
    --------
    >>> import numba
    >>> from kmq._config import set_threads
    >>> before = numba.get_num_threads()
    >>> set_threads(1)
    >>> numba.get_num_threads()
    1
    >>> set_threads(before)
    """
    if not threads:
        return
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ[THREADS_VARIABLE] = str(int(threads))
    else:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
