"""The Dask engine on a real ``distributed.LocalCluster`` (two worker processes on loopback):
the same bytes as the local engine and as images compressed one by one here, a corrupt file
reported and not fatal, the shared palette equal to the fit of the merged histograms, and
``kmq batch --engine dask --scheduler`` against the running cluster."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmq
from batch_reference import decoded_png, reference_png, reference_shared_palette, write_photos
from kmq import batch as kb
from kmq import cli
from kmq.files import CompressOptions
from kmq.io import read_rgb

distributed = pytest.importorskip("distributed")

K = 16
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def dask_engine(cluster):
    with distributed.Client(cluster) as client, kb.DaskEngine(client=client) as engine:
        yield engine


@pytest.fixture(scope="module")
def local_engine():
    with kb.LocalEngine(workers=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("photos")
    paths = write_photos(folder, 6)
    (folder / "sub" / "corrupt.png").write_bytes(paths[0].read_bytes()[:150])
    return folder, paths


def run_both(photos, tmp_path, dask_engine, local_engine, **options):
    folder, _ = photos
    results = {}
    for name, engine in (("dask", dask_engine), ("local", local_engine)):
        out = tmp_path / name
        results[name] = (out, kb.compress_batch(kb.plan_batch([folder], out, recursive=True),
                                                CompressOptions(k=K), engine=engine,
                                                **options))
    return results


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dask_writes_the_bytes_of_the_local_engine_and_reports_the_corrupt_file(
        photos, tmp_path, dask_engine, local_engine):
    folder, paths = photos
    results = run_both(photos, tmp_path, dask_engine, local_engine)
    (dask_out, dask_result), (local_out, _) = results["dask"], results["local"]
    assert tree(dask_out) == tree(local_out)
    for p in paths:
        assert (dask_out / p.relative_to(folder)).read_bytes() == reference_png(p, K)
    by_name = {Path(r.source).name: r for r in dask_result.records}
    bad = by_name.pop("corrupt.png")
    assert (bad.status, bad.error) == ("failed", "read")
    assert "corrupt.png" in bad.reason
    assert {r.status for r in by_name.values()} == {"done"}
    # the work ran on the cluster's worker processes, not in this one
    addresses = {w["host"] for w in dask_engine.client.scheduler_info()["workers"].values()}
    assert addresses == {"127.0.0.1"}
    assert len({r.worker for r in dask_result.records}) == 2 or len(paths) < 2


def test_shared_palette_on_dask_is_the_fit_of_the_merged_histograms(
        photos, tmp_path, dask_engine, local_engine):
    folder, paths = photos
    expected = reference_shared_palette(paths, K)
    results = run_both(photos, tmp_path, dask_engine, local_engine, shared_palette=True)
    (dask_out, dask_result), (local_out, local_result) = results["dask"], results["local"]
    assert np.array_equal(dask_result.palette, expected)
    assert np.array_equal(local_result.palette, expected)
    assert tree(dask_out) == tree(local_out)
    for p in paths:
        palette, indices = decoded_png(dask_out / p.relative_to(folder))
        assert np.array_equal(palette, expected)
        assert np.array_equal(indices, kmq.remap(read_rgb(p), expected))
    bad = next(r for r in dask_result.records if Path(r.source).name == "corrupt.png")
    assert (bad.status, bad.error) == ("failed", "read")


def test_cli_runs_on_a_running_scheduler(photos, tmp_path, cluster):
    folder, paths = photos
    out = tmp_path / "out"
    result = runner.invoke(cli.app, ["batch", str(folder / "*.png"), "-o", str(out), "-k",
                                     str(K), "--engine", "dask", "--scheduler",
                                     cluster.scheduler_address, "--format", "png"])
    assert result.exit_code == 0, result.output
    top = [p for p in paths if p.parent == folder]
    assert sorted(p.name for p in out.iterdir() if p.name != kb.MANIFEST_NAME) == sorted(
        p.name for p in top)
    for p in top:
        assert (out / p.name).read_bytes() == reference_png(p, K)
    with Image.open(out / top[0].name) as im:
        assert im.mode == "P"


def test_scheduler_needs_the_dask_engine(tmp_path):
    result = runner.invoke(cli.app, ["batch", str(tmp_path), "-o", str(tmp_path / "o"),
                                     "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "--engine dask" in result.output


def test_own_local_cluster_keeps_glibc_adaptive_malloc(photos, tmp_path):
    """Without a scheduler, DaskEngine starts its own LocalCluster; its workers must not inherit
    the nanny's MALLOC_TRIM_THRESHOLD_ (which freezes glibc's mmap threshold: every image-sized
    array is then a fresh mmap), and they get the numba thread count asked for. Then they still
    compress right."""
    import os

    folder, paths = photos
    top = [p for p in paths if p.parent == folder][:3]
    with kb.DaskEngine(workers=1, threads_per_worker=1) as engine:
        env = engine.client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                         os.environ.get("NUMBA_NUM_THREADS")))
        assert list(env.values()) == [(None, "1")]
        jobs = [kb.Job(str(p), str(tmp_path / p.name)) for p in top]
        result = kb.compress_batch(jobs, CompressOptions(k=K, format="png"), engine=engine)
    assert result.count("done") == len(top)
    for p in top:
        assert (tmp_path / p.name).read_bytes() == reference_png(p, K)
