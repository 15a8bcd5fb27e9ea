"""Many files: compress a batch, or fit one palette to many images, on a local process pool or
a Dask cluster, behind one engine interface.

The work is cut into one task per file. A task is plain, picklable data (paths and
:class:`kmq.files.CompressOptions`: :class:`FileTask`) and its result is a small record
(:class:`TaskResult`: the file layer's :class:`kmq.files.FileResult` and the worker that made
it); workers read their input and write their output themselves, by path, through
:func:`kmq.files.compress_file`, so only paths and records travel between processes or
machines. Both engines give byte-identical outputs: a file's result depends only on its pixels
and the options.

Modules
-------
:mod:`kmq.batch.plan`
    Inputs (files, folders, globs) to jobs: :func:`collect_inputs`, :func:`plan_batch`.
:mod:`kmq.batch.tasks`
    What workers run: :func:`compress_one`, :func:`histogram_one`, :func:`fit_palette_task`.
:mod:`kmq.batch.engines`
    Where they run: :class:`LocalEngine`, :class:`DaskEngine` (Dask is imported only by it).
:mod:`kmq.batch.run`
    :func:`compress_batch` and :func:`shared_palette`.
:mod:`kmq.batch.records`
    :class:`TaskResult` and the CSV or JSON report, :func:`write_report`.

Examples
--------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from PIL import Image
>>> from kmq.batch import LocalEngine, compress_batch, plan_batch
>>> from kmq.files import CompressOptions
>>> src, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
>>> rng = np.random.default_rng(0)
>>> for name in ("a", "b"):
...     Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(src / f"{name}.png")
>>> jobs = plan_batch([src], out, format="gif")
>>> [Path(job.output).name for job in jobs]
['a.gif', 'b.gif']
>>> with LocalEngine(workers=1) as engine:                       # doctest: +SKIP
...     result = compress_batch(jobs, CompressOptions(k=4), engine=engine)
>>> [(Path(r.output).name, r.status) for r in result.records]  # doctest: +SKIP
[('a.gif', 'done'), ('b.gif', 'done')]
"""

from kmq.batch.engines import DaskEngine, Engine, LocalEngine, make_engine
from kmq.batch.manifest import MANIFEST_NAME, OptionsChangedError, check_manifest
from kmq.batch.plan import (
    Job,
    collect_inputs,
    image_extensions,
    output_path,
    plan_batch,
    remove_stale_temporaries,
)
from kmq.batch.records import REPORT_FIELDS, TaskResult, report_text, write_report
from kmq.batch.run import (
    MERGE_CHUNK,
    BatchProgress,
    BatchResult,
    SharedPalette,
    compress_batch,
    shared_palette,
)
from kmq.batch.tasks import FileTask, compress_one, fit_palette_task, histogram_one

__all__ = ["MANIFEST_NAME", "MERGE_CHUNK", "REPORT_FIELDS", "BatchProgress", "BatchResult",
           "DaskEngine", "Engine", "FileTask", "Job", "LocalEngine", "OptionsChangedError",
           "SharedPalette", "TaskResult", "check_manifest", "collect_inputs", "compress_batch",
           "compress_one", "fit_palette_task", "histogram_one", "image_extensions", "make_engine",
           "output_path", "plan_batch", "remove_stale_temporaries", "report_text",
           "shared_palette", "write_report"]
