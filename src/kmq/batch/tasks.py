"""What a batch worker runs: one file compressed, one image's color histogram, or the fit of a
shared palette. Each takes plain data (paths, options, arrays) and returns plain data, so any
engine can ship it to another process or machine.

A task never raises for a bad file: its record says what happened (``failed``, with the error's
kind and message), and the rest of the batch goes on.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmq.batch.records import TaskResult
from kmq.errors import OutputExistsError, OutputWriteError, one_line
from kmq.files import DONE, SKIPPED, CompressOptions, compress_file, same_file
from kmq.io import DEFAULT_MAX_PIXELS

#: The reason given for an output that exists (without ``force``): a resumed batch skips it.
OUTPUT_EXISTS = "output exists"


@dataclass(frozen=True)
class FileTask:
    """What a worker needs to compress one file (picklable).

    Attributes
    ----------
    source, output : str
    options : kmq.files.CompressOptions
    """

    source: str
    output: str
    options: CompressOptions


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def peak_rss() -> int:
    """This process's peak resident memory in bytes (0 where the platform does not say)."""
    try:  # Linux: this process's own peak. ru_maxrss would be at least its parent's: Linux
        # keeps it across the fork and exec that start a spawned worker
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB else


def _skipped(task: FileTask) -> TaskResult:
    return TaskResult(task.source, task.output, status=SKIPPED, reason=OUTPUT_EXISTS)


def compress_one(task: FileTask) -> TaskResult:
    """Compress one file with :func:`kmq.files.compress_file`, creating its output's folder.

    An existing output is skipped (``skipped``, reason ``"output exists"``) unless
    ``task.options.force``, so that a batch run again does only what is left; an output that
    is the input fails (``exists``). Any other failure is a ``failed`` record; nothing
    raises.

    Parameters
    ----------
    task : FileTask

    Returns
    -------
    TaskResult
        Its ``worker`` and ``peak_rss`` are this process's, its ``seconds`` the time spent
        here on the file.
    """
    start = time.perf_counter()
    options = task.options
    try:
        if (not options.force and os.path.lexists(task.output)
                and not same_file(task.output, task.source)):
            record = _skipped(task)
        else:
            folder = Path(task.output).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputWriteError(f"{task.output}: cannot create its folder "
                                       f"({exc.strerror or one_line(exc)})") from exc
            record = TaskResult.of(compress_file(task.source, task.output, options))
    except OutputExistsError as exc:
        # the output is the input (an error), or was written by someone else since the check
        # above (the file layer checks again before it writes): kept, as a resumed batch does
        if same_file(task.output, task.source):
            record = TaskResult.failure(task.source, task.output, exc)
        else:
            record = _skipped(task)
    except Exception as exc:  # a KmqError, or a bug: reported, and the batch goes on
        record = TaskResult.failure(task.source, task.output, exc)
    record.seconds = time.perf_counter() - start
    record.worker, record.peak_rss = worker_id(), peak_rss()
    return record


def histogram_one(source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                  ) -> tuple[TaskResult, np.ndarray | None, np.ndarray | None]:
    """The map step of a shared palette: one image's exact color histogram.

    The image is read as RGB (a shared palette has no alpha: transparency is dropped with a
    warning in the record).

    Parameters
    ----------
    source : str
    max_pixels : int

    Returns
    -------
    record : TaskResult
        ``done`` with the image's size, its file's size and its distinct colors as ``k``; or
        ``failed`` with the reason.
    keys : ndarray of int32, shape (N,), or None
        24-bit keys ``R << 16 | G << 8 | B`` of its distinct colors, ascending (sent instead
        of the colors: smaller).
    counts : ndarray of int64, shape (N,), or None
        Pixels of each color.
    """
    start = time.perf_counter()
    keys = counts = None
    try:
        from kmq.color_histogram import histogram
        from kmq.io import load_image

        image = load_image(source, max_pixels=max_pixels, alpha=False)
        height, width = image.pixels.shape[:2]
        hist = histogram(image.pixels)
        keys, counts = np.asarray(hist.keys, np.int32), hist.counts
        record = TaskResult(source, "", status=DONE, input_bytes=image.n_bytes, width=width,
                            height=height, k=len(counts), warnings=image.warnings)
    except Exception as exc:
        record = TaskResult.failure(source, "", exc)
    record.seconds = time.perf_counter() - start
    record.worker, record.peak_rss = worker_id(), peak_rss()
    return record, keys, counts


def fit_palette_task(keys: np.ndarray, counts: np.ndarray, k: int, seed: int = 0,
                     color_space: str = "srgb") -> tuple[np.ndarray, np.ndarray, float]:
    """The fit step of a shared palette: :func:`kmq.fit_palette` of the histogram
    ``(keys, counts)``, which is the palette :func:`kmq.quantize` would find for an image
    holding all those pixels.

    Returns
    -------
    palette : ndarray of uint8, shape (K, 3)
        Most used first.
    counts : ndarray of int64, shape (K,)
        Pixels nearest to each entry, over all images.
    mse : float
        Mean squared error over all pixels of all images (8-bit sRGB).
    """
    from kmq import ColorHistogram, fit_palette
    from kmq.color_histogram import keys_to_colors

    hist = ColorHistogram(keys_to_colors(keys), np.asarray(counts, np.int64))
    fit = fit_palette(hist, k, seed=seed, color_space=color_space)
    return fit.palette, fit.counts, fit.mse


__all__ = ["OUTPUT_EXISTS", "FileTask", "compress_one", "fit_palette_task", "histogram_one",
           "peak_rss", "worker_id"]
