"""Whether kmq's compiled kernels are in numba's cache yet, and compiling or loading all of them.

numba compiles a kernel on its first call and writes the machine code to its cache (see
:mod:`kmq._config` for where); later processes only load it. The first run after an install (or
after numba, Python or kmq change) therefore pays the compilation, tens of seconds, and the
``kmq`` command says so before it starts (:func:`missing`). :func:`compile_all` pays it ahead
of time, for an image or container build (``kmq warmup``); :func:`compile_quantizer` pays what
``kmq compress`` needs. numba compiles in one thread, so with two CPUs both split the kernels
over two processes at once (``python -m kmq.kernel_cache STEP ...``), then load them here.

Examples
--------
>>> from kmq.kernel_cache import compile_all, missing
>>> done = compile_all()
>>> missing()
[]
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from kmq._config import start_numba

#: The kernel modules (under ``kmq._kernels``) that one-file commands may call.
KERNEL_MODULES = ("histogram", "kmeans", "rgba", "dither", "ssim", "coder")
#: Those that quantizing an opaque image without dithering calls.
QUANTIZE_MODULES = ("histogram", "kmeans")
#: Those and SSIM's, which ``kmq compress`` measures: what :func:`compile_quantizer` compiles.
COMPRESS_MODULES = (*QUANTIZE_MODULES, "ssim")
#: About how long compiling every kernel takes, in seconds, on a 2-core x86-64 machine
#: (``kmq warmup`` on an empty cache), and those that quantizing a first small opaque image
#: compiles (:func:`compile_quantizer`): in two processes at once, and in one (a single CPU);
#: see docs/performance.md.
COMPILE_SECONDS = 32
QUANTIZE_SECONDS = 20
COMPILE_SECONDS_ONE_CPU = 48
QUANTIZE_SECONDS_ONE_CPU = 31


def expected_seconds(*, quantizer_only: bool = False) -> int:
    """About how long compiling takes here (:data:`COMPILE_SECONDS` and the like), for the
    first-run message."""
    if _processes() >= 2:
        return QUANTIZE_SECONDS if quantizer_only else COMPILE_SECONDS
    return QUANTIZE_SECONDS_ONE_CPU if quantizer_only else COMPILE_SECONDS_ONE_CPU


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


@functools.cache
def _synthetic():
    """The small synthetic images every step runs on (the same in every process; made once,
    never written to)."""
    import numpy as np

    rng = np.random.default_rng(0)
    few = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    # over 100,000 distinct colors: the search on coarse cells and the parallel kernels run
    many = rng.integers(0, 256, (330, 330, 4), dtype=np.uint8)
    few_alpha = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    return few, many, few_alpha


def _search() -> None:
    """Lloyd's search and the swap trials (:mod:`kmq.kmeans`), on synthetic colors."""
    import numpy as np

    from kmq.kmeans import PARALLEL_MIN_POINTS, kmeans, refine_by_swaps

    rng = np.random.default_rng(0)
    points = rng.integers(0, 256, (600, 3)).astype(np.float64)
    weights = np.ones(len(points))
    refine_by_swaps(points, weights, kmeans(points, weights, points[:8].copy()))
    # as many colors as an exact histogram of a photo: the parallel and integral variants
    points = rng.integers(0, 256, (PARALLEL_MIN_POINTS, 3)).astype(np.float64)
    kmeans(points, np.ones(len(points)), points[:8].copy(), max_iter=2)


def _around_search() -> None:
    """Everything quantizing calls but Lloyd's search and the swap trials: the histogram, the
    cells, the seeding, Hartigan's moves and the remap, with the search replaced by a
    nearest-center labelling. For a process of its own: it patches the pipeline while it runs
    (not thread-safe)."""
    import numpy as np

    from kmq import kmeans as search
    from kmq import pipeline

    def nearest_labels(points, weights, centers, **_options):
        points, centers = np.asarray(points, np.float64), np.array(centers, np.float64)
        d2 = ((points[:, None, :] - centers[None]) ** 2).sum(axis=2)
        return search.KMeansResult(centers, d2.argmin(axis=1).astype(np.int32),
                                   float((d2.min(axis=1) * weights).sum()), 1, True)

    saved = pipeline.kmeans, search.kmeans, pipeline.refine_by_swaps
    pipeline.kmeans = search.kmeans = nearest_labels  # type: ignore[assignment]
    pipeline.refine_by_swaps = lambda points, weights, result, **_options: result  # type: ignore[assignment]
    try:
        few, many, _few_alpha = _synthetic()
        pipeline.quantize(few, 8)
        pipeline.quantize(np.ascontiguousarray(many[..., :3]), 64)  # on cells, then finer
    finally:
        pipeline.kmeans, search.kmeans, pipeline.refine_by_swaps = saved


def _indexed(k: int = 8):
    """A palette and an index map shaped as :func:`kmq.quantize` returns them."""
    import numpy as np

    rng = np.random.default_rng(1)
    return (rng.integers(0, 256, (k, 3), dtype=np.uint8),
            rng.integers(0, k, (24, 24), dtype=np.uint8))


def _ssim() -> None:
    from kmq import metrics

    palette, indices = _indexed()
    metrics.ssim_indexed(_synthetic()[0], palette, indices)


def _container() -> None:
    from kmq.codecs import container

    palette, indices = _indexed()
    for method in (container.Method.BITPACK_ZSTD, container.Method.CONTEXT):
        container.decode(container.encode(palette, indices, method=method))


def _quantize(image: str, k: int, **options) -> Callable[[], None]:
    """A step that quantizes one of the :func:`_synthetic` images."""
    def run() -> None:
        import numpy as np

        from kmq.pipeline import quantize

        few, many, few_alpha = _synthetic()
        images = {"few": few, "many rgb": np.ascontiguousarray(many[..., :3]), "many": many,
                  "few alpha": few_alpha}
        quantize(images[image], k, **options)

    return run


def _transparency() -> None:
    _quantize("few alpha", 8)()
    _quantize("many", 64)()


#: What each step runs, by name: a path of the one-file commands on small synthetic images.
STEPS: dict[str, Callable[[], None]] = {
    "quantize, few colors": _quantize("few", 8),
    "quantize, many colors": _quantize("many rgb", 64),
    "dithering": _quantize("few", 8, dither=1.0),
    "transparency": _transparency,
    "SSIM": _ssim,
    ".kmq container": _container,
}
#: The quantizer's kernels split in two halves of about the same compile time (its search, and
#: all around it), for two processes at once; the plans below add :data:`STEPS` to them, and a
#: process runs its steps in order.
PARTS: dict[str, Callable[[], None]] = {"search": _search, "around the search": _around_search}
_QUANTIZE_PLAN = (("search",), ("around the search", "SSIM"))  # what compress runs
_ALL_PLAN = (("search", "dithering", "transparency", "quantize, many colors"),
             ("around the search", "SSIM", ".kmq container"))


#: Seconds after which compiling processes still running are stopped (a hang, not a slow CPU:
#: they take 15-20 s on 2 cores).
_PROCESS_TIMEOUT = 900


def _processes() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(2, cpus)


def _in_processes(plan: tuple[tuple[str, ...], ...],
                  progress: Callable[[str], None] | None) -> list[tuple[str, float]]:
    """Run each group of ``plan``'s steps in a process of its own, all at once; returns
    ``(step, seconds)`` as they end. A process that fails is left to the caller's own pass,
    which compiles whatever is still missing."""
    procs = [subprocess.Popen([sys.executable, "-m", "kmq.kernel_cache", *group],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for group in plan]
    done: list[tuple[str, float]] = []
    lock = threading.Lock()

    def follow(proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event, step, seconds = [*line.rstrip("\n").split("\t"), ""][:3]
            with lock:
                if event == "start" and progress is not None:
                    progress(step)
                elif event == "done":
                    done.append((step, float(seconds)))

    threads = [threading.Thread(target=follow, args=(proc,), daemon=True) for proc in procs]
    try:
        for thread in threads:
            thread.start()
        end = time.monotonic() + _PROCESS_TIMEOUT
        for thread in threads:  # a process that hangs is killed; the caller's pass follows
            thread.join(max(0.0, end - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return done


def _run_here(names: tuple[str, ...],
              progress: Callable[[str], None] | None) -> list[tuple[str, float]]:
    done = []
    for name in names:
        if progress is not None:
            progress(name)
        start = time.perf_counter()
        STEPS[name]()
        done.append((name, time.perf_counter() - start))
    return done


def compile_all(progress: Callable[[str], None] | None = None, *, processes: int | None = None,
                gone: list[str] | None = None) -> list[tuple[str, float]]:
    """Compile (or load from the cache) every kernel the one-file commands use, by running
    each path once on small synthetic images: opaque and transparent, few and many colors,
    dithered, SSIM, and the ``.kmq`` container. Returns ``(step, seconds)`` per step;
    ``progress(step)`` is called before each.

    When kernels are missing (``gone``, :func:`missing` when the caller has just checked) and
    ``processes`` (default: the CPUs, at most 2) is 2, they compile in two processes at once
    (:data:`PARTS`, steps named ``compiled: ...``); the steps run here only if some kernel is
    still missing then. Otherwise every step runs here, compiling or loading its kernels.
    """
    gone = missing() if gone is None else gone
    if (processes or _processes()) < 2 or not gone:
        return _run_here(tuple(STEPS), progress)
    done = [(f"compiled: {step}", seconds)
            for step, seconds in _in_processes(_ALL_PLAN, progress)]
    return done + (_run_here(tuple(STEPS), progress) if missing() else [])


def compile_quantizer(*, processes: int | None = None, gone: list[str] | None = None) -> None:
    """Compile the kernels of :data:`COMPRESS_MODULES` (those of quantizing an opaque image,
    and SSIM's) in two processes at once as :func:`compile_all` does, when some are missing
    (``gone``, :func:`missing` of those modules when the caller has just checked); then load
    the quantizer's here (:func:`kmq.pipeline.warm_up`)."""
    from kmq.pipeline import warm_up

    gone = missing(COMPRESS_MODULES) if gone is None else gone
    if (processes or _processes()) >= 2 and gone:
        _in_processes(_QUANTIZE_PLAN, None)
    warm_up()


def _main(names: list[str]) -> None:
    """``python -m kmq.kernel_cache STEP ...``: run the steps (:data:`PARTS` or
    :data:`STEPS`) in order, printing ``start<TAB>step`` before each and
    ``done<TAB>step<TAB>seconds`` after. Exits as soon as the parent process is gone (killed or
    interrupted: nobody waits for the compilation any more)."""
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    for name in names:
        print(f"start\t{name}", flush=True)
        start = time.perf_counter()
        {**STEPS, **PARTS}[name]()
        print(f"done\t{name}\t{time.perf_counter() - start:.3f}", flush=True)


__all__ = ["COMPILE_SECONDS", "COMPILE_SECONDS_ONE_CPU", "COMPRESS_MODULES", "KERNEL_MODULES",
           "PARTS",
           "QUANTIZE_MODULES", "QUANTIZE_SECONDS", "QUANTIZE_SECONDS_ONE_CPU", "STEPS",
           "compile_all", "compile_quantizer", "expected_seconds", "kernels", "missing"]


if __name__ == "__main__":
    from kmq._config import start_numba_without_unused

    start_numba_without_unused()
    start_numba()
    _main(sys.argv[1:])
