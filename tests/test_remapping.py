import numpy as np
import pytest

import kmq
from kmq.remapping import nearest
from naive import nearest as naive_nearest


def test_nearest_equals_bruteforce_argmin_on_a_photo(small_photo):
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (97, 3)).astype(np.float64)
    colors = np.unique(small_photo.reshape(-1, 3), axis=0).astype(np.float64)
    np.testing.assert_array_equal(nearest(colors, palette), naive_nearest(colors, palette))


def test_nearest_breaks_ties_to_the_lower_index_whatever_the_guess():
    palette = np.array([[2, 2, 2], [0, 0, 0], [2, 2, 2], [1, 1, 3]], np.float64)
    points = np.array([[1, 1, 1], [1, 1, 2], [2, 2, 2]], np.float64)
    expected = naive_nearest(points, palette)
    for guess in range(4):
        got = nearest(points, palette, np.full(3, guess, np.int32))
        np.testing.assert_array_equal(got, expected)
    assert expected.tolist() == [0, 3, 0]


def test_nearest_with_bounds_skips_only_points_that_cannot_tie(small_photo):
    rng = np.random.default_rng(6)
    palette = rng.integers(0, 256, (64, 3)).astype(np.float64)
    colors = np.unique(small_photo.reshape(-1, 3), axis=0).astype(np.float64)
    expected = naive_nearest(colors, palette)
    d = np.sqrt(((colors[:, None] - palette[None]) ** 2).sum(axis=2))
    guess = rng.integers(0, 64, len(colors)).astype(np.int32)  # mostly wrong guesses
    upper = d[np.arange(len(colors)), guess]
    others = d.copy()
    others[np.arange(len(colors)), guess] = np.inf
    lower = others.min(axis=1)  # exact bounds: a point skips only if its guess is right
    got = nearest(colors, palette, guess, upper=upper, lower=lower)
    np.testing.assert_array_equal(got, expected)
    # a tie: exact bounds equal, so the point is searched and goes to the lower index
    palette = np.array([[8, 8, 8], [12, 8, 8]], np.float64)
    point = np.array([[10, 8, 8]], np.float64)
    tied = nearest(point, palette, np.array([1], np.int32), upper=np.array([2.0]),
                   lower=np.array([2.0]))
    assert tied.tolist() == [0]
    # bounds that lie are believed: the skip is real
    liar = nearest(point, palette, np.array([1], np.int32), upper=np.array([1.0]),
                   lower=np.array([3.0]))
    assert liar.tolist() == [1]


def test_remap_every_pixel_to_its_nearest_palette_color(small_photo):
    rng = np.random.default_rng(9)
    palette = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    idx = kmq.remap(small_photo, palette)
    expected = naive_nearest(small_photo.reshape(-1, 3), palette).reshape(small_photo.shape[:2])
    np.testing.assert_array_equal(idx, expected)


def test_remap_accepts_lists_and_pil_images(small_photo):
    from PIL import Image

    palette = [[0, 0, 0], [255, 255, 255], [128, 64, 32]]
    a = kmq.remap(Image.fromarray(small_photo), palette)
    b = kmq.remap(small_photo, np.array(palette, np.uint8))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [[[0, 0]], [[0, 0, 300]], [[0.5, 0, 0]], np.zeros((0, 3))])
def test_remap_rejects_bad_palettes(small_photo, bad):
    with pytest.raises(ValueError, match="palette"):
        kmq.remap(small_photo, bad)


def test_kmq_remap_stays_the_function_after_the_engine_is_imported(small_photo):
    import kmq.pipeline  # importing a submodule once shadowed kmq.remap

    assert callable(kmq.remap) and callable(kmq.quantize)
