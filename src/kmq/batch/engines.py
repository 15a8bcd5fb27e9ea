"""Engines: where a batch's tasks run, behind one interface (:class:`Engine`).

:class:`LocalEngine`
    A :class:`concurrent.futures.ProcessPoolExecutor` of ``spawn``-ed worker processes on this
    machine (spawned, not forked: numba's thread pools do not survive a fork).
:class:`DaskEngine`
    A ``dask.distributed`` client: given a scheduler address (``tcp://host:8786``) it uses that
    cluster, else it starts a :class:`distributed.LocalCluster` of worker processes. Inputs and
    outputs must be reachable under the same paths from the client and every worker (a shared
    file system). Dask is an optional part of kmq (``pip install 'kmq[dask]'``), imported only
    when a DaskEngine is made.

Each worker's numba threads are set by :func:`kmq._config.set_threads` so that workers x
threads does not exceed the cores. An engine keeps a bounded number of tasks in flight (twice
its workers by default), so a batch of any length holds a few images per worker at a time.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kmq._config import default_threads, set_threads, thread_environment
from kmq.errors import ArgumentError


def _call_pinned(fn: Callable, threads: int | None, *args):
    """``fn(*args)`` with the calling thread's numba threads set (a Dask task)."""
    set_threads(threads)
    return fn(*args)


def _call_pinned_many(fn: Callable, threads: int | None, items: list) -> list:
    """``[fn(item) for item in items]`` with numba threads set; an item's exception is its
    result (the others still run)."""
    set_threads(threads)
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
    """Initializer of a :class:`LocalEngine` worker process (before numba is imported)."""
    import signal

    set_threads(threads)
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
                      ) -> Iterator[tuple[Any, Any]]:
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

    Notes
    -----
    Workers are started on the first task. A worker ignores Ctrl-C (the client stops the
    batch; a worker finishes its file) and exits when the client process dies. When a worker
    dies (killed, out of memory) its tasks and those in flight yield the error, and a fresh
    pool runs the rest.
    """

    def __init__(self, workers: int | None = None, *, threads_per_worker: int | None = None,
                 context: str = "spawn") -> None:
        if workers is not None and workers < 1:
            raise ArgumentError(f"expected workers >= 1; got {workers}")
        self.workers = int(workers or os.cpu_count() or 1)
        self.threads_per_worker = threads_per_worker or default_threads(self.workers)
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
                if broken:  # a worker died: the pool is unusable; a fresh one runs the rest
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


#: Set by Dask's nannies in their workers; see :meth:`DaskEngine._start_local_cluster`.
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

    Raises
    ------
    kmq.MissingExtraError
        Dask is not installed (``pip install 'kmq[dask]'``).
    """

    #: Most items per Dask task. Each task pays a scheduler round trip, a large share of the
    #: work on small files; a few files per task amortize it (a worker still holds one image
    #: at a time, and each output is still written whole). Short batches get smaller tasks, so
    #: that every worker gets some.
    chunk = 8

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None,
                 threads_per_worker: int | None = None, client=None) -> None:
        from kmq.errors import require

        require("dask", "dask", "the dask engine")
        distributed = require("distributed", "dask", "the dask engine")
        self._owned: list = []
        if client is None and scheduler:
            client = distributed.Client(scheduler)
            self._owned.append(client)
        elif client is None:
            n = int(workers or os.cpu_count() or 1)
            threads_per_worker = threads_per_worker or default_threads(n)
            cluster = self._start_local_cluster(n, threads_per_worker)
            try:
                client = distributed.Client(cluster)
            except BaseException:
                cluster.close()
                raise
            self._owned += [client, cluster]
        self.client = client
        self.workers = max(1, sum(client.nthreads().values()))
        self.threads_per_worker = threads_per_worker or 1

    @staticmethod
    def _start_local_cluster(n: int, threads: int):
        """A LocalCluster of ``n`` single-threaded worker processes with ``threads`` numba
        threads each.

        Dask's nannies set ``MALLOC_TRIM_THRESHOLD_`` in their workers, which also freezes
        glibc's mmap threshold at 128 KiB: every image-sized array is then a fresh mmap,
        page-faulted anew on each file, slower than the local engine's processes. It is unset,
        as the nanny's config allows; a nanny also leaves it in this process's environment,
        which workers inherit, so it is taken out while the cluster starts.
        """
        import logging

        import dask
        from distributed import LocalCluster

        inherited = os.environ.pop(_TRIM, None)
        try:
            with dask.config.set({f"distributed.nanny.pre-spawn-environ.{_TRIM}": None}):
                return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    silence_logs=logging.ERROR, env=thread_environment(threads))
        finally:
            if inherited is not None:
                os.environ[_TRIM] = inherited

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
    (:class:`DaskEngine`).

    Raises
    ------
    ValueError
        An unknown name, or a scheduler address for the local engine.
    kmq.MissingExtraError
        ``"dask"`` without Dask installed.
    """
    if name == "local":
        if scheduler:
            raise ArgumentError("a scheduler address needs the dask engine")
        return LocalEngine(workers)
    if name == "dask":
        return DaskEngine(scheduler, workers=workers)
    raise ArgumentError(f"expected engine 'local' or 'dask'; got {name!r}")


__all__ = ["DaskEngine", "Engine", "LocalEngine", "make_engine"]
