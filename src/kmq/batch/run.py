"""Batches: compress many files, or fit one palette to many images, on an engine.

:func:`compress_batch` sends one :func:`~kmq.batch.tasks.compress_one` per job to the engine and
gathers the records in the jobs' order. :func:`shared_palette` is a map and a reduce: one exact
color histogram per image on the workers (:func:`~kmq.batch.tasks.histogram_one`), summed here
as they arrive (in chunks, with :func:`kmq.color_histogram.merge`, which is exact and
independent of order), then one fit of the sum on a worker
(:func:`~kmq.batch.tasks.fit_palette_task`).

The library never prints: pass ``progress(stage, record)``, called here for every finished file
(``stage`` is ``"histogram"`` or ``"compress"``); a truthy return cancels the batch
(:class:`kmq.CancelledError`; files already written stay complete).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kmq.batch.engines import Engine, LocalEngine
from kmq.batch.plan import Job, remove_stale_temporaries
from kmq.batch.records import TaskResult
from kmq.batch.tasks import OUTPUT_EXISTS, FileTask, compress_one, fit_palette_task, histogram_one
from kmq.errors import CancelledError, ImageReadError, OutputExistsError, one_line
from kmq.files import DONE, FAILED, SKIPPED, CompressOptions
from kmq.io import DEFAULT_MAX_PIXELS

#: Histograms merged into the running sum at a time (bounds the client's memory).
MERGE_CHUNK = 16

#: ``progress(stage, record) -> bool | None``: a truthy return cancels.
BatchProgress = Callable[[str, TaskResult], "bool | None"]


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
    records : list of TaskResult
        One per input, in order: ``done``, or ``failed`` (left out of the fit) with the reason.
    """

    palette: np.ndarray
    counts: np.ndarray
    mse: float
    distinct_colors: int
    records: list[TaskResult]


@dataclass
class BatchResult:
    """What :func:`compress_batch` did.

    Attributes
    ----------
    records : list of TaskResult
        One per job, in the jobs' order.
    palette : ndarray or None
        The shared palette, when one was fitted.
    seconds : float
        Wall time of the whole batch.
    """

    records: list[TaskResult]
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


def _worker_failed(source: str, output: str, exc: BaseException) -> TaskResult:
    """The record of a task whose worker died or could not run it."""
    return TaskResult(source, output, status=FAILED, error="worker",
                      reason=f"{source}: the worker failed ({type(exc).__name__}: "
                             f"{one_line(exc)})")


def _engine(engine: Engine | None) -> tuple[Engine, bool]:
    """``(engine, owned)``: the given engine, or a new LocalEngine that the caller closes."""
    return (engine, False) if engine is not None else (LocalEngine(), True)


@dataclass(frozen=True)
class _HistogramItem:
    """A picklable function of ``(index, path)``: :func:`histogram_one` of the path."""

    max_pixels: int

    def __call__(self, item: tuple[int, str]):
        return histogram_one(item[1], self.max_pixels)


def _compress_item(item: tuple[int, FileTask]) -> TaskResult:
    return compress_one(item[1])


def shared_palette(sources: Sequence[str | os.PathLike], k: int, *, seed: int = 0,
                   color_space: str = "srgb", max_pixels: int = DEFAULT_MAX_PIXELS,
                   engine: Engine | None = None,
                   progress: BatchProgress | None = None) -> SharedPalette:
    """Fit one palette of ``k`` colors to all ``sources`` together.

    The palette :func:`kmq.quantize` would find for a single image holding every pixel of every
    source: their exact histograms, summed, fitted by :func:`kmq.fit_palette`. Files that
    cannot be read are left out and reported in ``records``.

    Parameters
    ----------
    sources : sequence of str or path-like
        Image files.
    k : int
        Colors, 2..256.
    seed, color_space
        As for :func:`kmq.fit_palette`.
    max_pixels : int
        Larger images fail (:class:`kmq.ImageTooLargeError`) and are left out.
    engine : Engine, optional
        Where the histograms and the fit run; default: a new :class:`LocalEngine`.
    progress : callable(stage, record) -> bool, optional
        Called with ``"histogram"`` for every file read (or not).

    Returns
    -------
    SharedPalette

    Raises
    ------
    ImageReadError
        No source could be read.
    CancelledError
        ``progress`` returned a truthy value.
    """
    from kmq.color_histogram import ColorHistogram, keys_to_colors, merge

    names = [os.fspath(s) for s in sources]
    engine, owned = _engine(engine)
    records: dict[int, TaskResult] = {}
    total: ColorHistogram | None = None
    buffer: list[ColorHistogram] = []
    try:
        items = list(enumerate(names))
        for (i, name), outcome in engine.map_unordered(_HistogramItem(max_pixels), items):
            if isinstance(outcome, BaseException):
                records[i] = _worker_failed(name, "", outcome)
            else:
                records[i], keys, counts = outcome
                if keys is not None:  # read
                    hist = ColorHistogram(keys_to_colors(keys), counts)
                    hist.__dict__["keys"] = keys  # the cached property, known: not recomputed
                    buffer.append(hist)
                if len(buffer) >= MERGE_CHUNK:
                    total = merge(([total] if total is not None else []) + buffer)
                    buffer = []
            if progress is not None and progress("histogram", records[i]):
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
        From :func:`~kmq.batch.plan_batch`, or made by hand.
    options : kmq.files.CompressOptions
        For every file; ``options.format`` None takes each output's format from its
        extension.
    engine : Engine, optional
    shared_palette : bool
        Fit one palette to all the inputs (every input, including those whose output exists,
        so a resumed batch gets the same palette) and map every image onto it.
    progress : callable(stage, record) -> bool, optional

    Returns
    -------
    BatchResult

    Raises
    ------
    ImageReadError
        ``shared_palette`` and no input could be read.
    CancelledError
        ``progress`` returned a truthy value.
    """
    start = time.perf_counter()
    records: list[TaskResult | None] = [None] * len(jobs)
    engine, owned = _engine(engine)

    def finish(i: int, record: TaskResult, stage: str = "compress") -> None:
        records[i] = record
        if progress is not None and progress(stage, record):
            raise CancelledError("batch cancelled")

    try:
        todo: list[tuple[int, FileTask]] = []
        for i, job, error in _check_outputs(jobs):
            if error is not None:
                finish(i, TaskResult.failure(job.source, job.output, error))
            else:
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
        # temporaries a killed run left, also beside outputs it had already put in place
        remove_stale_temporaries(task.output for _, task in todo)
        if not options.force:  # skipped here without a round trip to a worker
            waiting = []
            for i, task in todo:
                if os.path.lexists(task.output):
                    finish(i, TaskResult(task.source, task.output, status=SKIPPED,
                                         reason=OUTPUT_EXISTS))
                else:
                    waiting.append((i, task))
            todo = waiting
        for (i, task), outcome in engine.map_unordered(_compress_item, todo):
            if isinstance(outcome, BaseException):
                outcome = _worker_failed(task.source, task.output, outcome)
            finish(i, outcome)
    finally:
        if owned:
            engine.close()
    return BatchResult(records=list(records), palette=palette,  # type: ignore[arg-type]
                       seconds=time.perf_counter() - start)


def _check_outputs(jobs: Sequence[Job]):
    """``(index, job, error)`` per job: an :class:`OutputExistsError` for an output that is
    one of the inputs or an earlier job's output, else None."""
    inputs = {Path(j.source).resolve(): j.source for j in jobs}
    owner: dict[Path, str] = {}
    for i, job in enumerate(jobs):
        key = Path(job.output).resolve()
        if key in inputs:
            yield i, job, OutputExistsError(f"{job.output}: is an input file ({inputs[key]}); "
                                            f"refusing to overwrite it")
        elif key in owner:
            yield i, job, OutputExistsError(f"{job.output}: is also the output of "
                                            f"{owner[key]}; not overwriting it")
        else:
            owner[key] = job.source
            yield i, job, None


def _fit_shared(jobs: Sequence[Job], todo: list[tuple[int, FileTask]],
                options: CompressOptions, engine: Engine,
                progress: BatchProgress | None) -> SharedPalette:
    """The shared palette of the jobs in ``todo``, with records indexed like ``jobs``."""
    sources = [task.source for _, task in todo]
    fitted = shared_palette(sources, options.k, seed=options.seed,
                            color_space=options.color_space, max_pixels=options.max_pixels,
                            engine=engine, progress=progress)
    by_job = [TaskResult(j.source, j.output, status=FAILED) for j in jobs]
    for (i, _), record in zip(todo, fitted.records, strict=True):
        by_job[i] = record
    fitted.records = by_job
    return fitted


__all__ = ["MERGE_CHUNK", "BatchProgress", "BatchResult", "SharedPalette", "compress_batch",
           "shared_palette"]
