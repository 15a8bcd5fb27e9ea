"""Shared fixtures: small real photographs, a folder of image files, and ../shared/images; every
kernel compiled before the tests."""

from __future__ import annotations

import fcntl
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

#: The project's shared test images live beside the project's root, at ../shared/images.
SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels(tmp_path_factory) -> None:
    """Every kmq kernel in numba's cache before the first test, so that a command run by a test
    prints no first-run notice whichever test comes first. One pytest-xdist worker compiles
    (on two processes) while the others wait on a lock; tests of the first run
    itself use caches of their own (NUMBA_CACHE_DIR)."""
    from kmq import kernel_cache

    with open(tmp_path_factory.getbasetemp().parent / "kmq-kernels.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        gone = kernel_cache.missing()
        if gone:  # the first worker; the others find them compiled and load them as needed
            kernel_cache.compile_all(gone=gone)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 RGB photograph (skimage.data, ships with scikit-image: no network)."""
    return data.astronaut()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """600x400 RGB photograph."""
    return data.coffee()


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """451x300 RGB photograph."""
    return data.chelsea()


@pytest.fixture(scope="session")
def graphic() -> np.ndarray:
    """A 64x64 flat-color drawing of 5 colors: what palette compression is for."""
    img = np.full((64, 64, 3), (250, 250, 245), np.uint8)
    img[8:30, 6:40] = (200, 30, 40)
    img[34:60, 20:58] = (30, 90, 200)
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 20) ** 2 + (xx - 48) ** 2 < 100] = (250, 200, 0)
    img[50:54, :] = (20, 20, 20)
    return img


@pytest.fixture(scope="session")
def small_photo(chelsea) -> np.ndarray:
    """A 61x83 crop of a photograph: odd sides, thousands of colors, quick to quantize."""
    return np.ascontiguousarray(chelsea[101:162, 180:263])


@pytest.fixture
def image_folder(tmp_path, small_photo, coffee) -> Path:
    """A folder with ``cat.png`` (lossless), ``cup.jpg`` (JPEG) and ``cup_gray.png`` (mode L)."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(small_photo).save(folder / "cat.png")
    cup = np.ascontiguousarray(coffee[150:221, 250:347])
    Image.fromarray(cup).save(folder / "cup.jpg", quality=90)
    Image.fromarray(cup).convert("L").save(folder / "cup_gray.png")
    return folder


@pytest.fixture(scope="session")
def shared_images() -> Path:
    """``../shared/images`` beside the project's root, or a skip saying it is absent."""
    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"shared test images not found at {SHARED_IMAGES} "
                    f"(a checkout without ../shared)")
    return SHARED_IMAGES
