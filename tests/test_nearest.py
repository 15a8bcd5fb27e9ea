import numpy as np
import pytest

import kmq
from kmq.nearest import nearest
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


def test_quantize_maps_ties_as_remap_does_on_its_palette():
    # four 96x96 crops of scikit-image's photos (those of test_batch's shared palette): at K = 6
    # some of their colors lie exactly halfway between two entries of the fitted palette
    from skimage import data

    crops = []
    for i in (0, 1, 3, 6):
        photo = (data.astronaut(), data.coffee(), data.chelsea())[i % 3]
        y, x = (37 * i) % (photo.shape[0] - 96), (53 * i) % (photo.shape[1] - 96)
        crops.append(photo[y:y + 96, x:x + 96])
    image = np.ascontiguousarray(np.concatenate(crops))
    colors = np.unique(image.reshape(-1, 3), axis=0).astype(np.float64)
    for k in (6, 16, 64):
        q = kmq.quantize(image, k)
        np.testing.assert_array_equal(q.indices, kmq.remap(image, q.palette))
        np.testing.assert_array_equal(q.counts, np.bincount(q.indices.ravel(), minlength=k))
        if k == 6:  # the case has ties, or this test would not test them
            d = np.sort(((colors[:, None] - q.palette[None].astype(np.float64)) ** 2).sum(2), 1)
            assert np.any(d[:, 0] == d[:, 1])
    for space in ("wsrgb", "oklab"):  # the nearest entries in the working space
        q = kmq.quantize(image, 16, color_space=space)
        np.testing.assert_array_equal(q.indices, kmq.remap(image, q.palette, color_space=space))


def test_nearest_leaves_bounds_that_hold_and_settle_all_but_ties(small_photo):
    rng = np.random.default_rng(7)
    palette = rng.integers(0, 256, (48, 3)).astype(np.float64)
    palette[1] = palette[0] + [2, 0, 0]  # colors halfway between these two are ties
    colors = np.unique(small_photo.reshape(-1, 3), axis=0).astype(np.float64)
    colors = np.concatenate([colors, palette[0] + [[1, 0, 0], [1, 5, 3]]])
    d = np.sqrt(((colors[:, None] - palette[None]) ** 2).sum(axis=2))
    for upper, lower in ((np.full(len(colors), np.inf), np.full(len(colors), -1.0)),
                         (d[:, 0] + 1.0, np.zeros(len(colors)))):
        labels = nearest(colors, palette, np.zeros(len(colors), np.int32), upper=upper,
                         lower=lower)
        np.testing.assert_array_equal(labels, naive_nearest(colors, palette))
        own = d[np.arange(len(colors)), labels]
        others = d.copy()
        others[np.arange(len(colors)), labels] = np.inf
        assert np.all(upper >= own - 1e-9) and np.all(lower <= others.min(axis=1) + 1e-9)
        tie = np.isclose(own, others.min(axis=1), rtol=0, atol=1e-12)
        assert tie.sum() >= 2 and np.all(~(upper < lower) | ~tie)
        # the points not at a tie are settled: a second call with the palette reversed searches
        # only the ties, and gives the brute force's answer for that order
        flipped = palette[::-1].copy()
        again = nearest(colors, flipped, (len(palette) - 1 - labels).astype(np.int32),
                        upper=upper, lower=lower)
        np.testing.assert_array_equal(again, naive_nearest(colors, flipped))


@pytest.mark.parametrize("space", ["srgb", "wsrgb", "linear", "oklab"])
def test_fit_palette_then_remap_is_quantize(small_photo, space):
    """The two phases give what :func:`kmq.quantize` gives (palette, indices, error), and
    remapping another image onto the fitted palette is its nearest entries, as
    :func:`kmq.remap` finds them."""
    other = np.ascontiguousarray(small_photo[::-1, ::-1])
    for k in (16, 64, 256):
        q = kmq.quantize(small_photo, k, color_space=space)
        fit = kmq.fit_palette(small_photo, k, color_space=space)
        mapped = fit.remap(small_photo)
        np.testing.assert_array_equal(fit.palette, q.palette)
        np.testing.assert_array_equal(mapped.indices, q.indices)
        assert mapped.mse == q.mse == fit.mse
        np.testing.assert_array_equal(fit.remap(other).indices,
                                      kmq.remap(other, fit.palette, color_space=space))
    if space == "srgb":  # and in sRGB, the plain nearest entry of every pixel
        pixels = small_photo.reshape(-1, 3).astype(np.float64)
        np.testing.assert_array_equal(
            q.indices.ravel(), naive_nearest(pixels, q.palette.astype(np.float64)))
