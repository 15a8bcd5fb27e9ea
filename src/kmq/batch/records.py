"""The record of one file in a batch, and the batch's report of them (CSV or JSON).

A record is the file layer's :class:`kmq.files.FileResult` plus where it was computed: the
worker process and its peak memory, which the report and ``benchmarks/bench_batch.py`` show.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kmq.errors import ArgumentError
from kmq.files import FileResult

if TYPE_CHECKING:
    from kmq.batch.run import BatchResult


@dataclass
class TaskResult(FileResult):
    """What happened to one file of a batch (:class:`kmq.files.FileResult`), and where.

    Attributes
    ----------
    worker : str
        ``host:pid`` of the worker process that did the work (empty when none did: the file
        was refused before being sent, or its worker died).
    peak_rss : int
        Peak resident memory of that worker process so far, in bytes (0 where unknown).
    """

    worker: str = ""
    peak_rss: int = 0

    @classmethod
    def of(cls, result: FileResult, **extra) -> TaskResult:
        """``result`` as a task result, with the fields ``extra`` gives (``worker``...)."""
        values = {f.name: getattr(result, f.name) for f in fields(FileResult)}
        return cls(**values, **extra)

    @classmethod
    def failure(cls, source: str, output: str, exc: BaseException) -> TaskResult:
        """A ``failed`` record for ``exc`` (:meth:`kmq.files.FileResult.failure`)."""
        return cls.of(FileResult.failure(source, output, exc))


#: Columns of a report, in order (one per field of :class:`TaskResult`).
REPORT_FIELDS = tuple(f.name for f in fields(TaskResult))


def _row(record: TaskResult) -> dict:
    return {name: getattr(record, name) for name in REPORT_FIELDS}


def _finite_or_none(row: dict) -> dict:
    return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in row.items()}


def report_text(result: BatchResult, fmt: str) -> str:
    """A batch's records as CSV or JSON text.

    Parameters
    ----------
    result : BatchResult
    fmt : {"csv", "json"}
        ``csv``: a header of :data:`REPORT_FIELDS` and one row per file, its warnings joined
        by ``"; "``. ``json``: ``{"summary": ..., "files": [...]}`` (and ``"palette"``, a list
        of ``[r, g, b]``, when the batch fitted one), warnings as a list and ``NaN`` as
        ``null``.

    Returns
    -------
    str
    """
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in result.records:
            row = _row(record)
            row["warnings"] = "; ".join(record.warnings)
            writer.writerow(row)
        return buf.getvalue()
    if fmt == "json":
        files = []
        for record in result.records:
            row = _finite_or_none(_row(record))
            row["warnings"] = list(record.warnings)
            files.append(row)
        doc: dict = {"summary": _finite_or_none(result.summary()), "files": files}
        if result.palette is not None:
            doc["palette"] = np.asarray(result.palette).tolist()
        return json.dumps(doc, indent=1) + "\n"
    raise ArgumentError(f"expected a report format 'csv' or 'json'; got {fmt!r}")


def write_report(path: str | os.PathLike, result: BatchResult) -> int:
    """Write :func:`report_text` to ``path``, CSV or JSON by its extension, atomically and
    replacing it if it exists; returns its size in bytes.

    Raises
    ------
    ValueError
        The extension is neither ``.csv`` nor ``.json``.
    kmq.OutputWriteError
        It cannot be written.
    """
    from kmq.files import write_bytes

    fmt = Path(path).suffix.lower().lstrip(".")
    return write_bytes(path, report_text(result, fmt).encode(), force=True)


__all__ = ["REPORT_FIELDS", "TaskResult", "report_text", "write_report"]
