"""``kmq.batch.engines`` and the thread policy of ``kmq._config``: the local engine's results and
failures (a worker that dies), the numba threads its workers run with, the memory they report,
and Dask as an optional part (``import kmq.batch`` does not load it; without it the dask engine
names the extra)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from kmq import batch as kb
from kmq._config import set_threads
from kmq.batch.tasks import peak_rss
from kmq.errors import MissingExtraError


def square_unless_seven(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x * x


def die_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)  # as a worker killed by the system would
    return x


def thread_facts() -> tuple[str | None, int, int]:
    """In a worker: NUMBA_NUM_THREADS, the size of numba's pool, the caller's thread count."""
    import numba

    return (os.environ.get("NUMBA_NUM_THREADS"), numba.config.NUMBA_NUM_THREADS,
            numba.get_num_threads())


@pytest.fixture(scope="module")
def one_worker():
    with kb.LocalEngine(workers=1, threads_per_worker=1) as engine:
        yield engine


def test_every_item_comes_back_once_with_its_result_or_its_error(one_worker):
    results = dict(one_worker.map_unordered(square_unless_seven, range(20), window=3))
    assert sorted(results) == list(range(20))
    error = results.pop(7)
    assert isinstance(error, ValueError) and str(error) == "seven"
    assert results == {x: x * x for x in range(20) if x != 7}
    assert one_worker.run(math.gcd, 12, 18) == 6


def test_a_worker_that_dies_fails_its_task_and_the_rest_still_run(one_worker):
    # one task at a time: only the one whose worker died is lost
    results = dict(one_worker.map_unordered(die_on_three, range(8), window=1))
    assert isinstance(results.pop(3), BrokenProcessPool)
    assert results == {x: x for x in range(8) if x != 3}


def test_workers_run_with_the_threads_asked_for(one_worker):
    # the pool itself is sized (numba reads the variable once, on import): the worker set it
    # before loading numba, so no thread of the worker can use more
    assert one_worker.run(thread_facts) == ("1", 1, 1)


def test_a_workers_peak_memory_is_its_own():
    held = np.ones(400 * 2**20 // 8)  # the client's peak is now above 400 MiB
    with kb.LocalEngine(workers=1) as engine:  # started after: a fork of this process
        worker_peak = engine.run(peak_rss)
    assert 10 * 2**20 < worker_peak < held.nbytes


def test_set_threads_after_numba_is_loaded_sets_the_calling_threads_count():
    import numba

    before = numba.get_num_threads()
    seen = []

    def pinned():
        set_threads(1)
        seen.append(numba.get_num_threads())

    thread = threading.Thread(target=pinned)
    thread.start()
    thread.join()
    assert seen == [1] and numba.get_num_threads() == before  # numba's count is per thread


def test_importing_the_batch_package_loads_neither_dask_nor_numba():
    # numba must not be loaded before a worker's initializer sizes its thread pool
    code = ("import sys, kmq.batch; "
            "print(sorted(m for m in ('dask', 'distributed', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_dask_engine_without_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'kmq\[dask\]'") as caught:
        kb.make_engine("dask")
    assert caught.value.exit_code == 2


def test_engine_names_and_arguments_are_checked():
    with pytest.raises(ValueError, match="dask engine"):
        kb.make_engine("local", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="'local' or 'dask'"):
        kb.make_engine("ray")
    with pytest.raises(ValueError, match="workers >= 1"):
        kb.LocalEngine(0)
