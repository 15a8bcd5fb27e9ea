import numpy as np
import pytest

from kmq._kernels import histogram as _k
from kmq.color_histogram import gather, histogram, keys_to_colors, merge
from naive import histogram as naive_histogram


def test_histogram_matches_unique_on_a_photo(small_photo):
    h = histogram(small_photo)
    colors, counts = naive_histogram(small_photo)
    np.testing.assert_array_equal(h.colors, colors)
    np.testing.assert_array_equal(h.counts, counts)
    assert h.n_pixels == small_photo.shape[0] * small_photo.shape[1]


@pytest.mark.parametrize("n", [1, 5000, 300_000])
def test_sorted_counts_equal_the_reference(n):
    rng = np.random.default_rng(n)
    pixels = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    pixels[n // 2:] = pixels[: n - n // 2] // 16 * 16  # repeated colors, shared buckets
    pixels[: n // 3, 0] = 7  # at 300,000: one red bucket counted in the table, the rest sorted
    pixels[-1] = [255, 255, 255]
    colors, counts = naive_histogram(pixels[None])
    c = colors.astype(np.int64)
    keys = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    got_keys, got_colors, got_counts = _k.sorted_counts(pixels)
    assert (got_keys.dtype, got_colors.dtype, got_counts.dtype) == (np.int32, np.uint8, np.int64)
    np.testing.assert_array_equal(got_keys, keys)
    np.testing.assert_array_equal(got_colors, colors)
    np.testing.assert_array_equal(got_counts, counts)


def test_histogram_extremes_of_the_key_space():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], np.uint8)
    h = histogram(img)
    assert h.keys.tolist() == [0x000000, 0x0000FF, 0xFF0000, 0xFFFFFF]
    assert h.counts.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(keys_to_colors(h.keys), h.colors)


def test_gather_maps_every_pixel_through_its_color(small_photo):
    h = histogram(small_photo)
    labels = np.arange(len(h), dtype=np.int32) % 251
    out = gather(small_photo, h, labels, 251)
    _colors, inverse = np.unique(small_photo.reshape(-1, 3), axis=0, return_inverse=True)
    assert out.dtype == np.uint8 and out.shape == small_photo.shape[:2]
    np.testing.assert_array_equal(out.ravel(), labels[inverse.ravel()])


def test_gather_uses_uint16_above_256_labels(small_photo):
    h = histogram(small_photo)
    out = gather(small_photo, h, np.arange(len(h), dtype=np.int32), len(h))
    assert len(h) > 256 and out.dtype == np.uint16
    np.testing.assert_array_equal(h.colors[out.ravel()], small_photo.reshape(-1, 3))


def test_merge_sums_counts_of_shared_colors(small_photo, coffee):
    a, b = histogram(small_photo), histogram(coffee[:50, :50])
    merged = merge([a, b])
    both = np.concatenate([small_photo.reshape(-1, 3), coffee[:50, :50].reshape(-1, 3)])
    colors, counts = naive_histogram(both[None])
    np.testing.assert_array_equal(merged.colors, colors)
    np.testing.assert_array_equal(merged.counts, counts)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((0, 4, 3), np.uint8)])
def test_histogram_rejects_what_is_not_an_rgb_uint8_image(bad):
    with pytest.raises(ValueError, match="expected"):
        histogram(bad)
