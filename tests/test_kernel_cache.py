"""The kernel cache: what is compiled, ``kmq warmup``, and the first run's notice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmq
from kmq import cli, kernel_cache
from kmq._config import SOURCES_STAMP, sources_digest
from kmq.cli.warmup import first_run_line

KMQ_EXE = Path(sys.executable).with_name("kmq")

#: In a fresh process on an empty cache: which kernels are missing, then the same after one
#: small kernel (compiled in a fraction of a second) was called, then that kernel's cache files.
PROBE = r"""
import json, os, sys
import numpy as np
import pytest
from kmq import kernel_cache
from kmq._kernels import histogram
before = kernel_cache.missing()
every = sorted(kernel_cache.kernels())
histogram.scatter_labels(np.zeros(3, np.int32), np.zeros(3, np.int32), np.zeros(3, np.int32))
after = kernel_cache.missing()
files = sorted(f for _, _, names in os.walk(sys.argv[1]) for f in names)
print(json.dumps([before, every, after, files]))
"""


def test_missing_kernels_follow_the_cache_files_on_disk(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    run = subprocess.run([sys.executable, "-c", PROBE, str(cache)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    assert run.returncode == 0, run.stderr
    before, every, after, files = json.loads(run.stdout)
    assert sorted(before) == every and "histogram.scatter_labels" in every  # nothing cached
    assert sorted(after) == sorted(set(every) - {"histogram.scatter_labels"})
    assert any(f.startswith("histogram.scatter_labels-") and f.endswith(".nbi") for f in files)
    # inlined helpers have no cache entry of their own and are not listed
    assert "kmeans._d2" not in every


def test_warmup_command_leaves_nothing_to_compile():
    result = CliRunner().invoke(cli.app, ["warmup"])
    assert result.exit_code == 0, result.output
    # "compiled: STEP" when they compiled in two processes, else "STEP"
    steps = [line.removeprefix("compiled: ").split()[0] for line in result.stdout.splitlines()]
    assert "quantize," in steps and "SSIM" in steps
    assert "kernels" in result.stdout.splitlines()[-1]
    assert kernel_cache.missing() == []


def _compress_until(tmp_path: Path, cache: Path, wanted: str, deadline: float) -> tuple[str, bool]:
    """Start ``kmq compress`` on a small image with ``cache`` as numba's cache; read its stderr
    until a line contains ``wanted`` or the deadline passes, then stop it. Returns (stderr read,
    whether it was still running)."""
    image = tmp_path / "in.png"
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(image)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([str(KMQ_EXE), "compress", str(image), "-o", str(tmp_path / "o.png"),
                             "-k", "8"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env, start_new_session=True)
    seen = ""
    try:
        assert proc.stderr is not None
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
            if wanted in line:
                break
        running = proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # with the processes it compiles in
        proc.wait()
    return seen, running


def test_first_run_says_it_compiles_before_compiling(tmp_path):
    # an empty cache: the notice is the first line on stderr, while the kernels still compile
    # (the process is stopped there, so the test does not pay the compilation)
    cache = tmp_path / "cache"
    cache.mkdir()
    seen, running = _compress_until(tmp_path, cache, "compiling", deadline=60)
    assert seen.splitlines() and seen.splitlines()[0] == first_run_line(quantizer_only=True)
    assert running


def test_a_cached_run_says_nothing_of_compiling(tmp_path):
    kernel_cache.compile_all()  # into the cache the child process finds too
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(image)
    proc = subprocess.run([str(KMQ_EXE), "compress", str(image), "-o", str(tmp_path / "o.png"),
                           "-k", "8", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "compiling" not in proc.stderr


#: In a fresh process: quantize small and large synthetic images, and list the kmq kernels
#: that numba compiled meanwhile (none when they all came from the cache).
COMPILED_BY_QUANTIZE = r"""
import json
import numpy as np
import pytest
from numba.core.event import install_recorder
from kmq.pipeline import quantize
rng = np.random.default_rng(5)
few = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
many = rng.integers(0, 256, (300, 340, 3), dtype=np.uint8)  # over 100,000 colors
with install_recorder("numba:compile") as recorder:
    quantize(few, 8)
    quantize(many, 64)
names = {e.data["dispatcher"].py_func.__qualname__ for _, e in recorder.buffer
         if e.is_start and e.data["dispatcher"].py_func.__module__.startswith("kmq.")}
print(json.dumps(sorted(names)))
"""


def test_the_quantizer_compiled_in_two_processes_leaves_nothing_to_compile(tmp_path):
    """compile_quantizer splits the quantizer's kernels over two processes (the search, and
    all around it); together with the loading pass they leave no quantizer kernel missing,
    and a later process quantizing small and large images compiles nothing."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    compile_run = subprocess.run(
        [sys.executable, "-c", "import json; from kmq import kernel_cache as c; "
         "c.compile_quantizer(processes=2); print(json.dumps(c.missing(c.QUANTIZE_MODULES)))"],
        capture_output=True, text=True, timeout=600, env=env)
    assert compile_run.returncode == 0, compile_run.stderr
    assert json.loads(compile_run.stdout) == []
    later = subprocess.run([sys.executable, "-c", COMPILED_BY_QUANTIZE], capture_output=True,
                           text=True, timeout=600, env=env)
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout) == []


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line.split()[1]
                           for line in status)
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_the_compiling_processes_end_with_their_parent(tmp_path):
    """Killing a command while it compiles (Ctrl-C, a CI timeout) leaves no compiler behind."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", "from kmq import kernel_cache as c; "
                               "c.compile_quantizer(processes=2)"], env=env)
    children_file = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    deadline = time.monotonic() + 120
    children: list[int] = []
    # until both run and the compiling has begun (a first kernel is in the cache)
    while time.monotonic() < deadline and parent.poll() is None and (
            len(children) < 2 or not any(tmp_path.rglob("*.nbi"))):
        children = [int(pid) for pid in children_file.read_text().split()]
        time.sleep(0.02)
    assert len(children) == 2, children
    parent.kill()
    parent.wait()
    # they are mid-step, many seconds from its end: they stop because the parent is gone
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


#: A helper in one kernel file and a kernel of another that inlines it, in a copy of kmq.
PROBE_HELPER = """from kmq._config import jit


@jit(inline="always")
def step(x):
    return x + {add}
"""
PROBE_KERNEL = """from kmq._config import jit
from kmq._kernels.probe_helper import step


@jit
def probe(x):
    return step(x) * 10
"""
#: Call the probe kernel; print its value, whether numba compiled it, and where kmq came from.
RUN_PROBE = r"""
import json
import kmq
from numba.core.event import install_recorder
from kmq._kernels.probe_kernel import probe
with install_recorder("numba:compile") as recorder:
    value = probe(1)
names = [e.data["dispatcher"].py_func.__qualname__ for _, e in recorder.buffer if e.is_start]
print(json.dumps([value, "probe" in names, kmq.__file__]))
"""


def test_a_changed_helper_file_recompiles_the_kernels_that_use_it(tmp_path):
    # numba keys a cached kernel by its own file: without kmq's stamp of every kernel source,
    # the third run would load the kernel compiled with the old helper and print 20
    package = tmp_path / "src"
    shutil.copytree(Path(kmq.__file__).parent, package / "kmq",
                    ignore=shutil.ignore_patterns("__pycache__"))
    kernels = package / "kmq" / "_kernels"
    (kernels / "probe_kernel.py").write_text(PROBE_KERNEL)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(package), "NUMBA_CACHE_DIR": str(cache)}

    def run(add: int) -> list:
        (kernels / "probe_helper.py").write_text(PROBE_HELPER.format(add=add))
        proc = subprocess.run([sys.executable, "-c", RUN_PROBE], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        value, compiled, source = json.loads(proc.stdout)
        assert Path(source).is_relative_to(package)
        return [value, compiled]

    assert run(1) == [20, True]
    assert run(1) == [20, False]  # the same sources: loaded from the cache
    assert run(2) == [30, True]
    assert run(2) == [30, False]
    stamps = list(cache.rglob(SOURCES_STAMP))
    assert len(stamps) == 1 and stamps[0].read_text() == sources_digest(kernels)
