"""Many files: compress a batch, or fit one palette to many images, on a local process pool or
a Dask cluster, behind one engine interface.

The work is cut into one task per file. A task is plain, picklable data (paths and parameters,
:class:`FileTask`) and its result is a small record (:class:`FileResult`: status, reason, bytes,
PSNR, time); workers read their input and write their output themselves, by path, so only
paths and these records travel between processes or machines. Every engine keeps a bounded
number of tasks in flight (twice its worker count by default), so a batch of any length holds
at most a few decoded images per worker at a time.

Engines
-------
:class:`LocalEngine`
    A :class:`concurrent.futures.ProcessPoolExecutor` of ``spawn``-ed worker processes on this
    machine (spawned, not forked: numba's thread pools do not survive a fork). Each worker's
    numba thread count is pinned so that workers x threads does not exceed the cores.
:class:`DaskEngine`
    A ``dask.distributed`` client: given a scheduler address (``tcp://host:8786``) it uses that
    cluster, else it starts a :class:`distributed.LocalCluster` of worker processes. Inputs and
    outputs must be reachable under the same paths from the client and every worker (a shared
    file system).

Both give byte-identical outputs: a file's result depends only on its pixels and the options
(the same image, K and seed give the same bytes on every machine and thread count).

Shared palette
--------------
:func:`shared_palette` is a map and a reduce: one exact color histogram per image, computed on
the workers (:func:`histogram_one`), summed in the client as results arrive (in chunks, with
:func:`kmq.histogram.merge`, which is exact and independent of order), then one k-means fit of
the summed histogram on a worker (:func:`fit_palette_task`). :func:`compress_batch` with
``shared_palette=True`` then maps every image onto that palette.

The library never prints: pass ``progress(stage, record)``, called in the client for every
finished file (``stage`` is ``"histogram"`` or ``"compress"``); a truthy return cancels the
batch (:class:`kmq.CancelledError`; files already written stay complete).

Examples
--------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from PIL import Image
>>> from kmq.batch import CompressOptions, LocalEngine, compress_batch, plan_batch
>>> src, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
>>> rng = np.random.default_rng(0)
>>> for name in ("a", "b"):
...     Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(src / f"{name}.png")
>>> jobs = plan_batch([src], out)
>>> with LocalEngine(workers=1) as engine:                       # doctest: +SKIP
...     result = compress_batch(jobs, CompressOptions(k=4), engine=engine)
>>> [(Path(r.output).name, r.status) for r in result.records]  # doctest: +SKIP
[('a.png', 'done'), ('b.png', 'done')]
"""

from __future__ import annotations

import csv
import glob
import io
import itertools
import json
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from kmq.errors import (
    CancelledError,
    ImageReadError,
    KmqError,
    OutputExistsError,
    error_kind,
    one_line,
)
from kmq.io import DEFAULT_MAX_PIXELS

#: Output formats and their file extensions.
FORMATS = ("png", "webp", "gif", "kmq")
#: Statuses of a :class:`FileResult`.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"
#: Files merged into the running sum of histograms at a time (bounds the client's memory).
MERGE_CHUNK = 16

#: ``progress(stage, record) -> bool | None``: a truthy return cancels.
BatchProgress = Callable[[str, "FileResult"], "bool | None"]


# ---------------------------------------------------------------------------------------------
# Plain data: tasks and their results


@dataclass(frozen=True)
class CompressOptions:
    """How every file of a batch is compressed (picklable: sent with each task).

    Attributes
    ----------
    k : int
        Colors, 2..256 (the cap of ``quality``'s search).
    fmt : {"png", "webp", "gif", "kmq"}
    seed : int
    color_space : {"srgb", "linear", "oklab"}
    dither : float
        Floyd-Steinberg strength, 0..1.
    quality : (float, float) or None
        ``(min_psnr, max_psnr)``: the fewest colors reaching ``max_psnr`` dB (see
        :func:`kmq.pipeline.quantize_to_quality`).
    palette : ndarray of uint8, shape (K, 3), or None
        Map every image onto this palette instead of fitting one.
    optimize : bool
        Recompress PNG output with oxipng.
    force : bool
        Replace existing outputs; without it they are skipped.
    skip_if_larger : bool
        Do not write an output larger than its input file (the file is skipped).
    max_pixels : int
        Larger inputs fail (:class:`kmq.ImageTooLargeError`).
    """

    k: int = 256
    fmt: str = "png"
    seed: int = 0
    color_space: str = "srgb"
    dither: float = 0.0
    quality: tuple[float, float] | None = None
    palette: np.ndarray | None = field(default=None, compare=False)
    optimize: bool = False
    force: bool = False
    skip_if_larger: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"expected fmt in {FORMATS}; got {self.fmt!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 2 <= self.k <= 256:
            raise ValueError(f"expected k, an int in 2..256; got {self.k!r}")


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes (both as strings: plain, picklable)."""

    source: str
    output: str


@dataclass(frozen=True)
class FileTask:
    """What a worker needs to compress one file."""

    source: str
    output: str
    options: CompressOptions


@dataclass
class FileResult:
    """The outcome of one file, as a worker returns it.

    Attributes
    ----------
    source, output : str
    status : {"done", "skipped", "failed"}
    reason : str
        Why it was skipped or failed (empty when done).
    error : str
        The kind of failure: ``read``, ``too_large``, ``exists``, ``corrupt``, ``quality``,
        ``write``, ``worker`` (the worker process died) or ``internal``; empty otherwise.
    input_bytes, output_bytes : int
        Sizes of the input file and of the output written (0 if none).
    width, height, k : int
        Image size and palette colors used.
    psnr : float
        PSNR (dB) of the output against the input; ``nan`` if not measured.
    seconds : float
        Time the worker spent on the file (read, quantize, encode, write).
    worker : str
        ``host:pid`` of the worker process.
    peak_rss : int
        Peak resident memory of that worker process so far, in bytes (0 where unknown).
    warning : str
        Warnings raised while reading (e.g. transparency dropped), joined by ``; ``.
    """

    source: str
    output: str
    status: str = FAILED
    reason: str = ""
    error: str = ""
    input_bytes: int = 0
    output_bytes: int = 0
    width: int = 0
    height: int = 0
    k: int = 0
    psnr: float = math.nan
    seconds: float = 0.0
    worker: str = ""
    peak_rss: int = 0
    warning: str = ""

    @property
    def pixels(self) -> int:
        """Pixels of the image (0 when it was not read)."""
        return self.width * self.height


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# ---------------------------------------------------------------------------------------------
# What workers run: one file in, one small record out


def encode(fmt: str, palette: np.ndarray, indices: np.ndarray, *, optimize: bool = False) -> bytes:
    """The bytes of a ``fmt`` file holding ``palette`` and ``indices`` (as ``kmq compress``
    writes them)."""
    if fmt == "kmq":
        from kmq.codecs.container import encode as encode_kmq

        return encode_kmq(palette, indices)
    if fmt == "webp":
        from kmq.codecs.webp import encode_webp

        return encode_webp(palette, indices)
    if fmt == "gif":
        from kmq.codecs.gif import encode_gif

        return encode_gif(palette, indices)
    from kmq.codecs.png import encode_png

    return encode_png(palette, indices, optimize=optimize)


def _read(source: str, max_pixels: int, record: FileResult, fmt: str = "png") -> np.ndarray:
    """The pixels of ``source``: RGB, or RGBA when it has transparency (made binary for GIF)."""
    from kmq.io import binary_alpha, read_image

    rgb = read_image(source, max_pixels=max_pixels)
    if fmt == "gif":
        rgb = binary_alpha(rgb)
    record.height, record.width = rgb.shape[:2]
    record.input_bytes = os.stat(source).st_size
    return rgb


def _quantize(rgb: np.ndarray, opts):
    """The quantization ``opts`` ask for: onto a given palette (a shared palette is RGB: an
    image's transparency is then dropped with a warning), to a quality, or at K colors."""
    if opts.palette is not None:
        from kmq.pipeline import apply_palette

        return apply_palette(rgb, opts.palette, color_space=opts.color_space,
                             dither=opts.dither, max_pixels=opts.max_pixels)
    if opts.quality is not None:
        from kmq.pipeline import quantize_to_quality

        return quantize_to_quality(rgb, *opts.quality, max_colors=opts.k, seed=opts.seed,
                                   color_space=opts.color_space, dither=opts.dither,
                                   max_pixels=opts.max_pixels)
    from kmq.pipeline import quantize

    return quantize(rgb, opts.k, seed=opts.seed, color_space=opts.color_space,
                    dither=opts.dither, max_pixels=opts.max_pixels)


def compress_one(task: FileTask) -> FileResult:
    """Read, quantize (or map onto the given palette), encode and atomically write one file.

    Never raises for a bad file: the returned record says what happened. An existing output is
    skipped unless ``task.options.force``; the output's folder is created if needed.

    Parameters
    ----------
    task : FileTask

    Returns
    -------
    FileResult
    """
    opts = task.options
    start = time.perf_counter()
    record = FileResult(task.source, task.output, worker=_worker_id())
    output = Path(task.output)
    try:
        if not opts.force and output.exists():
            record.status, record.reason, record.error = SKIPPED, "output exists", ""
            return record
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _quantize(_read(task.source, opts.max_pixels, record, opts.fmt), opts)
        if caught:
            record.warning = "; ".join(dict.fromkeys(one_line(w.message) for w in caught))
        record.k, record.psnr = result.k, result.psnr
        data = encode(opts.fmt, result.palette, result.indices, optimize=opts.optimize)
        del result
        if opts.skip_if_larger and len(data) > record.input_bytes:
            record.status = SKIPPED
            record.reason = (f"output would be larger than the input ({len(data):,} > "
                             f"{record.input_bytes:,} bytes)")
            return record
        from kmq.io import write_atomic

        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            record.output_bytes = write_atomic(output, lambda fh: fh.write(data),
                                               overwrite=opts.force)
        except OutputExistsError:
            record.status, record.reason = SKIPPED, "output exists"
            return record
        except OSError as exc:
            record.error = "write"
            record.reason = f"{output}: cannot write ({exc.strerror or one_line(exc)})"
            return record
        record.status = DONE
    except KmqError as exc:
        record.error, record.reason = error_kind(exc), one_line(exc)
    except Exception as exc:  # a bug or an unexpected library error: report it, go on
        record.error = "internal"
        record.reason = f"{task.source}: internal error: {type(exc).__name__}: {one_line(exc)}"
    finally:
        record.seconds = time.perf_counter() - start
        record.peak_rss = _peak_rss()
    return record


def histogram_one(source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                  ) -> tuple[FileResult, np.ndarray | None, np.ndarray | None]:
    """The map step of a shared palette: one image's exact color histogram.

    Returns
    -------
    record : FileResult
        ``done`` with the image's size, or ``failed`` with the reason.
    keys : ndarray of int32, shape (N,), or None
        24-bit keys ``R << 16 | G << 8 | B`` of its distinct colors, ascending.
    counts : ndarray of int64, shape (N,), or None
        Pixels of each color.
    """
    start = time.perf_counter()
    record = FileResult(source, "", worker=_worker_id())
    keys = counts = None
    try:
        from kmq.histogram import histogram
        from kmq.io import read_rgb

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rgb = read_rgb(source, max_pixels=max_pixels)  # a shared palette is RGB
        if caught:
            record.warning = "; ".join(dict.fromkeys(one_line(w.message) for w in caught))
        record.height, record.width = rgb.shape[:2]
        record.input_bytes = os.stat(source).st_size
        hist = histogram(rgb)
        del rgb
        keys, counts = np.asarray(hist.keys, np.int32), hist.counts
        record.k, record.status = len(counts), DONE
    except KmqError as exc:
        record.error, record.reason = error_kind(exc), one_line(exc)
    except Exception as exc:
        record.error = "internal"
        record.reason = f"{source}: internal error: {type(exc).__name__}: {one_line(exc)}"
    finally:
        record.seconds = time.perf_counter() - start
        record.peak_rss = _peak_rss()
    return record, keys, counts


def fit_palette_task(keys: np.ndarray, counts: np.ndarray, k: int, seed: int = 0,
                     color_space: str = "srgb") -> tuple[np.ndarray, np.ndarray, float]:
    """The fit step of a shared palette: the palette :func:`kmq.quantize` would find for an
    image whose histogram is ``(keys, counts)``.

    Returns
    -------
    palette : ndarray of uint8, shape (K, 3)
        Most used first.
    counts : ndarray of int64, shape (K,)
        Pixels nearest to each entry, over all images.
    mse : float
        Mean squared error over all pixels of all images (8-bit sRGB).
    """
    from kmq.histogram import ColorHistogram, keys_to_colors
    from kmq.pipeline import _check_k, _fit_palette

    hist = ColorHistogram(keys_to_colors(keys), np.asarray(counts, np.int64))
    pal, _labels, pal_counts, mse, _n_iter, _converged = _fit_palette(
        hist, _check_k(k), seed=seed, tol=1e-4, max_iter=300, color_space=color_space,
        progress=None)
    return pal, pal_counts, mse


# ---------------------------------------------------------------------------------------------
# Engines


def _pin_threads(threads: int | None) -> None:
    """Limit numba (and kmq's fitting threads) in this process to ``threads``."""
    if not threads:
        return
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    else:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _call_pinned(fn: Callable, threads: int | None, *args):
    """Run ``fn(*args)`` with the calling thread's numba threads pinned (Dask tasks)."""
    _pin_threads(threads)
    return fn(*args)


def _call_pinned_many(fn: Callable, threads: int | None, items: list) -> list:
    """``[fn(item) for item in items]`` with numba threads pinned; an item's exception is its
    result (the others still run)."""
    _pin_threads(threads)
    results = []
    for item in items:
        try:
            results.append(fn(item))
        except Exception as exc:
            results.append(exc)
    return results


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # the client was killed: do not linger as an orphan
            os._exit(1)


def _init_local_worker(threads: int | None, parent: int) -> None:
    """Initializer of a :class:`LocalEngine` worker process."""
    import signal

    _pin_threads(threads)
    # Ctrl-C goes to the whole process group: the client stops the batch, and a worker
    # finishes its file (outputs are written whole or not at all either way).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="kmq-parent-watch").start()


class Engine:
    """Runs functions on workers: the interface the batch functions use.

    Attributes
    ----------
    workers : int
        Tasks it runs at a time (worker processes, or Dask worker threads).
    threads_per_worker : int or None
        numba threads each task may use (None: numba's default).
    """

    workers: int = 1
    threads_per_worker: int | None = None

    def map_unordered(self, fn: Callable, items: Iterable, *, window: int | None = None,
                      ) -> Iterator[tuple[object, object]]:
        """Yield ``(item, fn(item))`` as tasks finish, keeping at most ``window`` (twice the
        workers by default) in flight. A task whose worker failed yields its exception as the
        result. Closing the iterator cancels the tasks not yet started."""
        raise NotImplementedError

    def run(self, fn: Callable, *args):
        """``fn(*args)`` on one worker; returns its result."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class LocalEngine(Engine):
    """Worker processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`).

    Parameters
    ----------
    workers : int, optional
        Worker processes; default: the number of CPUs.
    threads_per_worker : int, optional
        numba threads per worker; default: CPUs // workers (at least 1).
    context : {"spawn", "forkserver"}
        How worker processes start (not ``fork``: numba's thread pools do not survive it).
    """

    def __init__(self, workers: int | None = None, *, threads_per_worker: int | None = None,
                 context: str = "spawn") -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"expected workers >= 1; got {workers}")
        self.workers = int(workers or os.cpu_count() or 1)
        self.threads_per_worker = threads_per_worker or _default_threads(self.workers)
        self.context = context
        self._pool = None

    def _executor(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context(self.context),
                initializer=_init_local_worker, initargs=(self.threads_per_worker, os.getpid()))
        return self._pool

    def map_unordered(self, fn, items, *, window=None):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        window = window or 2 * self.workers
        todo = iter(items)
        pending: dict = {}
        try:
            while True:
                for item in todo:
                    pending[self._executor().submit(fn, item)] = item
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    item = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool as exc:
                        broken, result = True, exc
                    except Exception as exc:
                        result = exc
                    yield item, result
                if broken:  # a worker died (killed, out of memory): start a fresh pool
                    for future, item in list(pending.items()):
                        del pending[future]
                        yield item, BrokenProcessPool("a worker process died")
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
        finally:
            for future in pending:
                future.cancel()

    def run(self, fn, *args):
        return self._executor().submit(fn, *args).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


_TRIM = "MALLOC_TRIM_THRESHOLD_"


class DaskEngine(Engine):
    """A ``dask.distributed`` cluster: the one at ``scheduler``, or a new LocalCluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Without it a
        :class:`distributed.LocalCluster` of ``workers`` processes is started (and closed with
        the engine).
    workers : int, optional
        Worker processes of the LocalCluster; default: the number of CPUs.
    threads_per_worker : int, optional
        numba threads each task may use; default: CPUs // workers for a LocalCluster, 1 on a
        running cluster (whose workers are usually started with one thread per core).
    client : distributed.Client, optional
        Use this client (not closed with the engine) instead.
    """

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None,
                 threads_per_worker: int | None = None, client=None) -> None:
        from distributed import Client

        self._owned = []
        if client is None and scheduler:
            client = Client(scheduler)
            self._owned.append(client)
        elif client is None:
            import logging

            import dask
            from distributed import LocalCluster

            n = int(workers or os.cpu_count() or 1)
            threads_per_worker = threads_per_worker or _default_threads(n)
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_ in their workers, which also freezes
            # glibc's mmap threshold at 128 KiB: every image-sized array is then a fresh mmap,
            # page-faulted anew on each file, 10-20% slower than the local engine's processes
            # (measured on batches of small photos). Unset it, as the nanny's config allows;
            # a nanny also leaves it in this process's environment, which workers inherit.
            inherited = os.environ.pop(_TRIM, None)
            try:
                with dask.config.set({f"distributed.nanny.pre-spawn-environ.{_TRIM}": None}):
                    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None,
                                           silence_logs=logging.ERROR,
                                           env={"NUMBA_NUM_THREADS": str(threads_per_worker)})
            finally:
                if inherited is not None:
                    os.environ[_TRIM] = inherited
            client = Client(cluster)
            self._owned += [client, cluster]
        self.client = client
        self.workers = max(1, sum(client.nthreads().values()))
        self.threads_per_worker = threads_per_worker or 1

    #: Most items per task: each task pays a scheduler round trip, which on small files is a
    #: large share of the work; a few files per task amortize it (a worker still holds one image
    #: at a time, and each output is still written whole). Short batches get smaller tasks, so
    #: that every worker gets some.
    chunk = 8

    def map_unordered(self, fn, items, *, window=None):
        from distributed import as_completed

        window = window or 2 * self.workers
        remaining = len(items) if hasattr(items, "__len__") else None
        size = (self.chunk if remaining is None
                else max(1, min(self.chunk, remaining // (4 * self.workers))))
        todo = iter(items)
        pending: dict = {}
        queue = as_completed()

        def submit_next() -> bool:
            nonlocal remaining
            n = size
            if remaining is not None:  # taper at the end, so that no worker idles long
                n = max(1, min(size, remaining // (2 * self.workers)))
                remaining -= n
            group = list(itertools.islice(todo, n))
            if not group:
                return False
            future = self.client.submit(_call_pinned_many, fn, self.threads_per_worker, group,
                                        pure=False)
            pending[future.key] = group
            queue.add(future)
            return True

        try:
            while len(pending) < window and submit_next():
                pass
            for future in queue:
                group = pending.pop(future.key)
                try:
                    results = future.result()
                except Exception as exc:  # the worker died or the task could not run
                    results = [exc] * len(group)
                future.release()
                yield from zip(group, results, strict=True)
                submit_next()
        finally:
            queue.clear()

    def run(self, fn, *args):
        return self.client.submit(_call_pinned, fn, self.threads_per_worker, *args,
                                  pure=False).result()

    def close(self) -> None:
        for obj in self._owned:
            obj.close()
        self._owned = []


def make_engine(name: str = "local", *, workers: int | None = None,
                scheduler: str | None = None) -> Engine:
    """An engine by name: ``"local"`` (:class:`LocalEngine`) or ``"dask"``
    (:class:`DaskEngine`)."""
    if name == "local":
        if scheduler:
            raise ValueError("a scheduler address needs the dask engine")
        return LocalEngine(workers)
    if name == "dask":
        return DaskEngine(scheduler, workers=workers)
    raise ValueError(f"expected engine 'local' or 'dask'; got {name!r}")


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


def image_extensions() -> frozenset[str]:
    """Lower-case extensions of the image files Pillow opens (what a folder walk picks)."""
    from PIL import Image

    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def collect_inputs(inputs: Sequence[str | os.PathLike], *, recursive: bool = False,
                   exclude: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """Every input file as ``(path, relative path)``, the relative path being the layout to
    keep under the output folder.

    An existing folder gives its image files (by extension; hidden files are left out), all
    the way down with ``recursive``, relative to itself; a glob pattern (``*``, ``?``, ``[``;
    ``**`` for any depth) gives what it matches, relative to its fixed leading folders; any
    other name is taken as a file, by its name (a missing one then fails as unreadable).
    Files found under ``exclude`` (the output folder) by a walk or a glob are left out, and a
    file named twice is kept once, at its first place.
    """
    exts = image_extensions()
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path, walked: bool = True) -> None:
        key = path.resolve()
        if key not in seen and not (walked and _inside(key, skip)):
            seen.add(key)
            found.append((path, rel))

    def walk(folder: Path, base: Path) -> None:
        entries = folder.rglob("*") if recursive else folder.iterdir()
        for path in sorted(entries):
            rel = path.relative_to(base)
            if (path.is_file() and path.suffix.lower() in exts
                    and not any(part.startswith(".") for part in path.relative_to(folder).parts)):
                add(path, rel)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            walk(path, path)
        elif glob.has_magic(text):
            parts = path.parts
            fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
            base = Path(*parts[:fixed]) if fixed else Path(".")
            for match in sorted(glob.glob(text, recursive=True)):
                m = Path(match)
                if m.is_dir():
                    walk(m, base)
                elif m.is_file() and not m.name.startswith("."):
                    add(m, m.relative_to(base))
        else:
            add(path, Path(path.name), walked=False)
    return found


def output_path(rel: Path, out_dir: str | os.PathLike, fmt: str = "png") -> Path:
    """Where the input at ``rel`` (relative to its input folder) goes: the same folders and
    stem under ``out_dir``, with the format's extension."""
    return Path(out_dir) / rel.parent / f"{rel.stem}.{fmt}"


def plan_batch(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
               fmt: str = "png", recursive: bool = False) -> list[Job]:
    """The jobs of a batch: :func:`collect_inputs` (leaving ``out_dir`` out), each mapped to
    :func:`output_path` under ``out_dir``."""
    if fmt not in FORMATS:
        raise ValueError(f"expected fmt in {FORMATS}; got {fmt!r}")
    return [Job(os.fspath(src), os.fspath(output_path(rel, out_dir, fmt)))
            for src, rel in collect_inputs(inputs, recursive=recursive, exclude=out_dir)]


def remove_stale_temporaries(outputs: Iterable[str | os.PathLike]) -> int:
    """Delete the temporary files (``.<name>.*.tmp``) that an interrupted run left beside
    ``outputs``; returns how many. (Do not run two batches into one folder at once.)"""
    by_folder: dict[Path, set[str]] = {}
    for out in outputs:
        out = Path(out)
        by_folder.setdefault(out.parent, set()).add(out.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(".") and entry.endswith(".tmp"):
                name = entry[1:-4].rsplit(".", 1)[0]
                if name in names:
                    try:
                        os.unlink(folder / entry)
                        removed += 1
                    except OSError:
                        pass
    return removed


# ---------------------------------------------------------------------------------------------
# Batches


@dataclass
class SharedPalette:
    """One palette fitted to many images (:func:`shared_palette`).

    Attributes
    ----------
    palette : ndarray of uint8, shape (K, 3)
        Most used first.
    counts : ndarray of int64, shape (K,)
        Pixels nearest to each entry, over all images read.
    mse : float
        Mean squared error over those pixels.
    distinct_colors : int
        Distinct colors in all the images together.
    records : list of FileResult
        One per input, in order: ``done``, or ``failed`` (left out of the fit) with the reason.
    """

    palette: np.ndarray
    counts: np.ndarray
    mse: float
    distinct_colors: int
    records: list[FileResult]


@dataclass
class BatchResult:
    """What :func:`compress_batch` did.

    Attributes
    ----------
    records : list of FileResult
        One per job, in the jobs' order.
    palette : ndarray or None
        The shared palette, when one was fitted.
    seconds : float
        Wall time of the whole batch.
    """

    records: list[FileResult]
    palette: np.ndarray | None = None
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """Files with this status."""
        return sum(r.status == status for r in self.records)

    def summary(self) -> dict:
        """Totals: files done, skipped, failed; bytes before and after and their ratio (files
        done); mean PSNR (files done); megapixels; wall seconds and megapixels per second."""
        done = [r for r in self.records if r.status == DONE]
        before = sum(r.input_bytes for r in done)
        after = sum(r.output_bytes for r in done)
        psnrs = [r.psnr for r in done if math.isfinite(r.psnr)]
        mp = sum(r.pixels for r in done) / 1e6
        return {"files": len(self.records), "done": len(done), "skipped": self.count(SKIPPED),
                "failed": self.count(FAILED), "bytes_before": before, "bytes_after": after,
                "ratio": before / after if after else math.nan,
                "mean_psnr": float(np.mean(psnrs)) if psnrs else math.nan,
                "megapixels": mp, "seconds": self.seconds,
                "megapixels_per_second": mp / self.seconds if self.seconds > 0 else math.nan}


def _engine_failure(item_source: str, output: str, exc: BaseException) -> FileResult:
    return FileResult(item_source, output, error="worker",
                      reason=f"{item_source}: the worker failed ({type(exc).__name__}: "
                             f"{one_line(exc)})")


def _with_engine(engine: Engine | None):
    """``(engine, owned)``: the given engine, or a new LocalEngine that the caller closes."""
    return (engine, False) if engine is not None else (LocalEngine(), True)


def shared_palette(sources: Sequence[str | os.PathLike], k: int, *, seed: int = 0,
                   color_space: str = "srgb", max_pixels: int = DEFAULT_MAX_PIXELS,
                   engine: Engine | None = None,
                   progress: BatchProgress | None = None) -> SharedPalette:
    """Fit one palette of ``k`` colors to all ``sources`` together.

    A map (one exact histogram per image, on the workers), a reduce (their sum,
    :func:`kmq.histogram.merge`, in the client as they arrive) and one fit (on a worker): the
    palette :func:`kmq.quantize` would find for a single image holding every pixel of every
    source. Files that cannot be read are left out and reported in ``records``.

    Raises
    ------
    ImageReadError
        No source could be read.
    CancelledError
        ``progress`` returned a truthy value.
    """
    from kmq.histogram import ColorHistogram, keys_to_colors, merge

    names = [os.fspath(s) for s in sources]
    engine, owned = _with_engine(engine)
    records: dict[int, FileResult] = {}
    total: ColorHistogram | None = None
    buffer: list[ColorHistogram] = []
    try:
        items = list(enumerate(names))
        for (i, name), outcome in engine.map_unordered(_HistogramItem(max_pixels), items):
            if isinstance(outcome, BaseException):
                record, keys, counts = _engine_failure(name, "", outcome), None, None
            else:
                record, keys, counts = outcome
            records[i] = record
            if keys is not None:
                hist = ColorHistogram(keys_to_colors(keys), counts)
                hist.__dict__["keys"] = keys
                buffer.append(hist)
                if len(buffer) >= MERGE_CHUNK:
                    total = merge(([total] if total is not None else []) + buffer)
                    buffer = []
            if progress is not None and progress("histogram", record):
                raise CancelledError("cancelled while counting colors")
        if buffer:
            total = merge(([total] if total is not None else []) + buffer)
        if total is None:
            raise ImageReadError(f"none of the {len(names)} inputs could be read")
        palette, counts, mse = engine.run(fit_palette_task, total.keys, total.counts, k, seed,
                                          color_space)
    finally:
        if owned:
            engine.close()
    return SharedPalette(palette=palette, counts=counts, mse=mse, distinct_colors=len(total),
                         records=[records[i] for i in range(len(names))])


@dataclass(frozen=True)
class _HistogramItem:
    """A picklable function of ``(index, path)``: :func:`histogram_one` of the path."""

    max_pixels: int

    def __call__(self, item: tuple[int, str]):
        return histogram_one(item[1], self.max_pixels)


def _compress_item(item: tuple[int, FileTask]) -> FileResult:
    return compress_one(item[1])


def compress_batch(jobs: Sequence[Job], options: CompressOptions = CompressOptions(), *,
                   engine: Engine | None = None, shared_palette: bool = False,
                   progress: BatchProgress | None = None) -> BatchResult:
    """Compress every job on ``engine`` (a new :class:`LocalEngine` by default).

    An existing output is skipped without being recomputed unless ``options.force`` (so a
    rerun after an interruption does only what is left; outputs are always written whole, and
    temporary files an interrupted run left are removed). Two jobs with the same output, or an
    output that is one of the inputs, fail (``exists``). A file that fails is reported in its
    record and the others go on.

    Parameters
    ----------
    jobs : sequence of Job
        From :func:`plan_batch`, or made by hand.
    options : CompressOptions
    engine : Engine, optional
    shared_palette : bool
        Fit one palette to all the inputs (every input, including those whose output exists,
        so a resumed batch gets the same palette) and map every image onto it.
    progress : callable(stage, record) -> bool, optional

    Returns
    -------
    BatchResult
    """
    start = time.perf_counter()
    records: list[FileResult | None] = [None] * len(jobs)
    inputs = {Path(j.source).resolve(): j.source for j in jobs}
    owner: dict[Path, str] = {}
    todo: list[tuple[int, FileTask]] = []
    engine, owned = _with_engine(engine)

    def finish(i: int, record: FileResult, stage: str = "compress") -> None:
        records[i] = record
        if progress is not None and progress(stage, record):
            raise CancelledError("batch cancelled")

    try:
        for i, job in enumerate(jobs):
            key = Path(job.output).resolve()
            if key in inputs:
                finish(i, FileResult(job.source, job.output, error="exists",
                                     reason=f"{job.output}: is an input file "
                                            f"({inputs[key]}); refusing to overwrite it"))
            elif key in owner:
                finish(i, FileResult(job.source, job.output, error="exists",
                                     reason=f"{job.output}: is also the output of "
                                            f"{owner[key]}; not overwriting it"))
            else:
                owner[key] = job.source
                todo.append((i, FileTask(job.source, job.output, options)))
        palette = None
        if shared_palette and options.palette is None:
            fitted = _fit_shared(jobs, todo, options, engine, progress)
            palette = fitted.palette
            options = replace(options, palette=palette)
            failed = {i for i, r in enumerate(fitted.records) if r.status == FAILED}
            for i, task in todo:
                if i in failed:
                    record = fitted.records[i]
                    record.output = task.output
                    finish(i, record)
            todo = [(i, replace(task, options=options)) for i, task in todo if i not in failed]
        if not options.force:
            waiting = []
            for i, task in todo:
                if Path(task.output).exists():
                    finish(i, FileResult(task.source, task.output, status=SKIPPED,
                                         reason="output exists"))
                else:
                    waiting.append((i, task))
            todo = waiting
        remove_stale_temporaries(task.output for _, task in todo)
        for (i, task), outcome in engine.map_unordered(_compress_item, todo):
            if isinstance(outcome, BaseException):
                outcome = _engine_failure(task.source, task.output, outcome)
            finish(i, outcome)
    finally:
        if owned:
            engine.close()
    return BatchResult(records=list(records), palette=palette,
                       seconds=time.perf_counter() - start)


def _fit_shared(jobs, todo, options: CompressOptions, engine: Engine, progress,
                ) -> SharedPalette:
    """The shared palette of the jobs in ``todo``, with records indexed like ``jobs``."""
    sources = [task.source for _, task in todo]
    fitted = shared_palette(sources, options.k, seed=options.seed,
                            color_space=options.color_space, max_pixels=options.max_pixels,
                            engine=engine, progress=progress)
    by_job: list[FileResult] = [FileResult(j.source, j.output) for j in jobs]
    for (i, _), record in zip(todo, fitted.records, strict=True):
        by_job[i] = record
    fitted.records = by_job
    return fitted


# ---------------------------------------------------------------------------------------------
# Reports

#: Columns of a report, in order.
REPORT_FIELDS = tuple(f.name for f in fields(FileResult))


def report_text(result: BatchResult, fmt: str) -> str:
    """A batch's records as CSV (one row per file, :data:`REPORT_FIELDS`) or JSON
    (``{"summary": ..., "files": [...]}``; ``NaN`` PSNRs become ``null``)."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in result.records:
            writer.writerow(asdict(r))
        return buf.getvalue()
    if fmt == "json":
        def clean(d: dict) -> dict:
            return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in d.items()}

        doc = {"summary": clean(result.summary()),
               "files": [clean(asdict(r)) for r in result.records]}
        if result.palette is not None:
            doc["palette"] = np.asarray(result.palette).tolist()
        return json.dumps(doc, indent=1) + "\n"
    raise ValueError(f"expected a report format 'csv' or 'json'; got {fmt!r}")


def write_report(path: str | os.PathLike, result: BatchResult) -> int:
    """Write :func:`report_text` atomically to ``path`` (CSV or JSON by its extension),
    replacing it if it exists; returns its size in bytes."""
    from kmq.io import write_atomic

    fmt = Path(path).suffix.lower().lstrip(".")
    data = report_text(result, fmt).encode()
    return write_atomic(path, lambda fh: fh.write(data), overwrite=True)


__all__ = ["BatchResult", "CompressOptions", "DaskEngine", "Engine", "FileResult", "FileTask",
           "Job", "LocalEngine", "SharedPalette", "collect_inputs", "compress_batch",
           "compress_one", "encode", "fit_palette_task", "histogram_one", "make_engine",
           "output_path", "plan_batch", "remove_stale_temporaries", "report_text",
           "shared_palette", "write_report"]
