"""Whether kmq's compiled kernels are in numba's cache yet, and compiling or loading all of them.

numba compiles a kernel on its first call and writes the machine code to its cache (see
:mod:`kmq._config` for where); later processes only load it. The first run after an install (or
after numba, Python or kmq change) therefore pays the compilation, tens of seconds, and the
``kmq`` command says so before it starts (:func:`missing`). :func:`compile_all` pays it ahead
of time, for an image or container build (``kmq warmup``).

Examples
--------
>>> from kmq.kernel_cache import compile_all, missing
>>> done = compile_all()
>>> missing()
[]
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from kmq._config import start_numba

#: The kernel modules (under ``kmq._kernels``) that one-file commands may call.
KERNEL_MODULES = ("histogram", "kmeans", "rgba", "dither", "ssim", "coder")
#: Those that quantizing an opaque image without dithering calls.
QUANTIZE_MODULES = ("histogram", "kmeans")
#: About how long compiling every kernel takes, in seconds, on a 2-core x86-64 machine
#: (``kmq warmup`` on an empty cache), and those that quantizing a first small opaque image
#: compiles (:func:`kmq.pipeline.warm_up`); see docs/performance.md.
COMPILE_SECONDS = 40
QUANTIZE_SECONDS = 30


def kernels(modules: tuple[str, ...] = KERNEL_MODULES) -> dict[str, object]:
    """The cached numba dispatchers of ``modules`` by ``module.function`` (imports numba).

    Functions inlined into their callers (``inline="always"``) compile as part of those and
    have no cache entry of their own, so they are left out.
    """
    start_numba()
    from numba.core.dispatcher import Dispatcher

    found: dict[str, object] = {}
    for name in modules:
        module = importlib.import_module(f"kmq._kernels.{name}")
        for attr, value in vars(module).items():
            if (isinstance(value, Dispatcher) and value.__module__ == module.__name__
                    and value.targetoptions.get("inline", "never") != "always"):
                found[f"{name}.{attr}"] = value
    return found


def missing(modules: tuple[str, ...] = KERNEL_MODULES) -> list[str]:
    """Kernels of ``modules`` with nothing in numba's cache for this numba, Python and kmq
    source (the cache's index file absent or stale): the ones a new process would compile.

    Reads one small index file per kernel; compiles and loads nothing.
    """
    gone = []
    for name, dispatcher in kernels(modules).items():
        cache = getattr(dispatcher, "_cache", None)  # numba's FunctionCache
        index = getattr(cache, "_cache_file", None)
        if index is None:  # caching off for this kernel: nothing to find
            continue
        if not index._load_index():
            gone.append(name)
    return gone


def compile_all(progress: Callable[[str], None] | None = None) -> list[tuple[str, float]]:
    """Compile (or load from the cache) every kernel the one-file commands use, by running
    each path once on small synthetic images: opaque and transparent, few and many colors,
    dithered, SSIM, and the ``.kmq`` container. Returns ``(step, seconds)`` per step;
    ``progress(step)`` is called before each."""
    import numpy as np

    from kmq import metrics
    from kmq.codecs import container
    from kmq.pipeline import quantize

    rng = np.random.default_rng(0)
    few = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    # over 100,000 distinct colors: the search on coarse cells and the parallel kernels run
    many = rng.integers(0, 256, (330, 330, 4), dtype=np.uint8)
    few_alpha = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)

    def kmq_file() -> None:
        q = quantize(few, 8)
        for method in (container.Method.BITPACK_ZSTD, container.Method.CONTEXT):
            container.decode(container.encode(q.palette, q.indices, method=method))

    def ssim() -> None:
        q = quantize(few, 8)
        metrics.ssim_indexed(few, q.palette, q.indices)

    steps = [("quantize, few colors", lambda: quantize(few, 8)),
             ("quantize, many colors", lambda: quantize(np.ascontiguousarray(many[..., :3]), 64)),
             ("dithering", lambda: quantize(few, 8, dither=1.0)),
             ("transparency", lambda: (quantize(few_alpha, 8), quantize(many, 64))),
             ("SSIM", ssim), (".kmq container", kmq_file)]
    done = []
    for name, step in steps:
        if progress is not None:
            progress(name)
        start = time.perf_counter()
        step()
        done.append((name, time.perf_counter() - start))
    return done


__all__ = ["COMPILE_SECONDS", "KERNEL_MODULES", "QUANTIZE_MODULES", "QUANTIZE_SECONDS",
           "compile_all", "kernels", "missing"]
