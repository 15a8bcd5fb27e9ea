"""First-call cost of kmq's numba kernels: cold (empty cache), warm (cached), and import time.

Question: how long does a user wait the first time, and on every later run, before kmq works?

Each measurement is a fresh ``python -c "import kmq; kmq.quantize(...)"`` child process:

- ``import``: time of ``import numpy``, ``import numba``, ``import PIL.Image``, then ``import kmq``
  (what is left for kmq's own modules), in a fresh interpreter.
- ``cold``: ``NUMBA_CACHE_DIR`` set to a new empty folder, so every kernel compiles on first call.
- ``warm``: the same folder again, so kernels load from the cache.

In each child the first ``kmq.quantize`` (and ``kmq.remap``) call is timed, then a second identical
call: first minus second is the compile (or cache load) cost. The image is a real photo (the
smallest in the folder, >16k distinct colors so every code path runs), read before timing.

    python benchmarks/bench_compile.py [IMAGES] [--repeat 3] [--k 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_IMAGES, find_images, kmq_source_digest, machine, table

CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import numba
t2 = time.perf_counter()
import PIL.Image
t3 = time.perf_counter()
import kmq
t4 = time.perf_counter()
rgb = np.asarray(PIL.Image.open(sys.argv[1]).convert("RGB"))
k = int(sys.argv[2])
t = time.perf_counter(); q = kmq.quantize(rgb, k); first = time.perf_counter() - t
t = time.perf_counter(); kmq.remap(rgb, q.palette); remap_first = time.perf_counter() - t
t = time.perf_counter(); kmq.quantize(rgb, k); second = time.perf_counter() - t
t = time.perf_counter(); kmq.remap(rgb, q.palette); remap_second = time.perf_counter() - t
print(json.dumps({"numpy": t1 - t0, "numba": t2 - t1, "pil": t3 - t2, "kmq": t4 - t3,
                  "import_total": t4 - t0, "first": first, "second": second,
                  "remap_first": remap_first, "remap_second": remap_second}))
"""


def child(image: Path, k: int, cache_dir: str) -> tuple[dict, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CHILD, str(image), str(k)], env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"child failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1]), wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="?", default=str(DEFAULT_IMAGES))
    p.add_argument("--repeat", type=int, default=3, help="cold/warm pairs (median reported)")
    p.add_argument("--k", type=int, default=64)
    args = p.parse_args(argv)
    image = find_images(args.images)[0]
    print(f"# bench_compile: {image.name}, K={args.k}, {args.repeat} cold/warm pairs (median); "
          f"{machine()}; kmq sources {kmq_source_digest()}")

    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="kmq-numba-cache-") as cache:
            for phase in ("cold", "warm"):
                data, wall = child(image, args.k, cache)
                data["wall"] = wall
                runs[phase].append(data)
            n_files = sum(1 for f in Path(cache).rglob("*") if f.is_file())

    def med(phase: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[phase])

    rows = []
    for phase in ("cold", "warm"):
        rows.append([phase, f"{med(phase, 'import_total'):.3f}", f"{med(phase, 'first'):.3f}",
                     f"{med(phase, 'second'):.3f}",
                     f"{med(phase, 'first') - med(phase, 'second'):.3f}",
                     f"{med(phase, 'remap_first'):.3f}", f"{med(phase, 'remap_second'):.3f}",
                     f"{med(phase, 'wall'):.3f}"])
    print(table(["cache", "import s", "1st quantize s", "2nd quantize s", "1st - 2nd",
                 "1st remap s", "2nd remap s", "process wall s"], rows))
    print(f"\n(the cache folder held {n_files} files after the warm run)")
    print("\nimport time, fresh interpreter, median over all runs (s):")
    every = runs["cold"] + runs["warm"]
    parts = [[name, f"{statistics.median(r[key] for r in every):.3f}"]
             for name, key in [("numpy", "numpy"), ("numba", "numba"), ("PIL.Image", "pil"),
                               ("kmq (after the above)", "kmq"), ("total", "import_total")]]
    print(table(["module", "seconds"], parts))
    cold = med("cold", "first") - med("cold", "second")
    warm = med("warm", "first") - med("warm", "second")
    print(f"\nfirst-call compile cost: cold {cold:.2f} s, warm (cached) {warm:.2f} s; "
          f"import kmq {statistics.median(r['import_total'] for r in every):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
