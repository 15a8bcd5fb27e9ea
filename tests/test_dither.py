"""Dithering: both methods against the plain reference (3 and 4 channels, every space, with
transparency); what dithering is for."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import gaussian

import kmq
from kmq._kernels import dither as _kd
from kmq.colorspace import SPACES, from_working, gamut_bounds, to_working
from kmq.dither import diffuse, diffuse_from_nearest, dither, flatness, floyd_steinberg
from kmq.nearest import nearest
from naive_dither import adaptive as naive_adaptive
from naive_dither import flatness as naive_flatness
from naive_dither import floyd_steinberg as naive_floyd_steinberg
from naive_dither import nearest_color

SHAPES = [(1, 1), (1, 7), (6, 1), (2, 2), (9, 13), (12, 5)]


def _random_case(seed: int, shape: tuple[int, int], k: int, space: str):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    palette = rng.integers(0, 256, (k, 3)).astype(np.uint8)
    return to_working(rgb, space), to_working(palette, space)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("strength", [1.0, 0.75, 0.3])
@pytest.mark.parametrize("clip", [False, True])
def test_kernel_equals_textbook_reference_on_random_images(space, strength, clip):
    bounds = gamut_bounds(space) if clip else None
    for i, shape in enumerate(SHAPES):
        for k in (1, 2, 5, 33):
            points, palette = _random_case(100 * i + k, shape, k, space)
            got = floyd_steinberg(points, palette, strength=strength, bounds=bounds)
            expected = naive_floyd_steinberg(points, palette, strength, bounds)
            np.testing.assert_array_equal(got, expected, err_msg=f"{shape} K={k}")


def _rgba_case(seed: int, shape: tuple[int, int], k: int, space: str):
    """Premultiplied RGBA points: (color * a / 255 in the working space, a), some a = 0; the
    palette's entry 0 is transparent."""
    rng = np.random.default_rng(seed)
    color, palette = _random_case(seed, shape, k, space)
    alpha = rng.choice([0, 0, 40, 128, 255, 255, 255], size=shape).astype(np.float64)
    points = np.concatenate([color * alpha[..., None] / 255, alpha[..., None]], axis=2)
    pal_alpha = rng.integers(0, 256, k).astype(np.float64)
    pal_alpha[0] = 0
    pal = np.concatenate([palette * pal_alpha[:, None] / 255, pal_alpha[:, None]], axis=1)
    return points, pal, alpha == 0


def _bounds4(space):
    lo, hi = gamut_bounds(space)
    return np.append(np.minimum(lo, 0), 0), np.append(hi, 255)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("strength", [1.0, 0.75, 0.3, 0.0])
@pytest.mark.parametrize("clip", [False, True])
def test_adaptive_kernel_equals_reference_on_random_images(space, strength, clip):
    bounds = gamut_bounds(space) if clip else None
    for i, shape in enumerate(SHAPES):
        for k in (1, 2, 5, 33):
            points, palette = _random_case(100 * i + k, shape, k, space)
            got = diffuse(points, palette, strength=strength, bounds=bounds)
            expected = naive_adaptive(points, palette, strength, bounds)
            np.testing.assert_array_equal(got, expected, err_msg=f"{shape} K={k}")


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("method", ["adaptive", "floyd-steinberg"])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_four_channels_with_transparency_equal_the_reference(space, method, strength):
    """Premultiplied RGBA points: exact 4-channel nearest colors, error in all 4 channels,
    transparent pixels take entry 0 and pass nothing on."""
    naive = naive_adaptive if method == "adaptive" else naive_floyd_steinberg
    for i, shape in enumerate([*SHAPES, (17, 23)]):
        for k in (1, 3, 40):
            points, palette, clear = _rgba_case(7 * i + k, shape, k, space)
            for bounds in (None, _bounds4(space)):
                got = diffuse(points, palette, strength=strength, method=method, bounds=bounds,
                              transparent=clear)
                expected = naive(points, palette, strength, bounds, clear, 0)
                np.testing.assert_array_equal(got, expected, err_msg=f"{shape} K={k}")
                assert (got[clear] == 0).all()
                # without a mask the same points are dithered like any others
                np.testing.assert_array_equal(
                    diffuse(points, palette, strength=strength, method=method, bounds=bounds),
                    naive(points, palette, strength, bounds))


@pytest.mark.parametrize("method", ["adaptive", "floyd-steinberg"])
def test_transparent_pixels_pass_no_error_on(method):
    """What lies under a transparent pixel cannot change any other pixel's index."""
    points, palette, clear = _rgba_case(3, (30, 40), 12, "srgb")
    other = points.copy()
    other[clear] = np.random.default_rng(1).uniform(0, 255, (int(clear.sum()), 4))
    a = diffuse(points, palette, method=method, transparent=clear)
    b = diffuse(other, palette, method=method, transparent=clear)
    np.testing.assert_array_equal(a, b)
    # the index is the palette's first entry of alpha 0 unless one is given
    np.testing.assert_array_equal(
        diffuse(points, palette, method=method, transparent=clear, transparent_index=5)[clear], 5)


def test_four_channel_nearest_is_the_exact_argmin_on_many_colors():
    rng = np.random.default_rng(9)
    points = rng.uniform(0, 255, (20, 25, 4))
    palette = rng.uniform(0, 255, (300, 4))
    got = diffuse(points, palette, strength=0.0)
    expected = np.array([[nearest_color(points[y, x], palette) for x in range(25)]
                         for y in range(20)])
    np.testing.assert_array_equal(got, expected)


def test_flatness_equals_the_reference_and_counts_like_neighbours():
    rng = np.random.default_rng(6)
    for shape in [*SHAPES, (15, 9)]:
        idx = rng.integers(0, 3, shape)
        np.testing.assert_array_equal(flatness(idx), naive_flatness(idx))
    assert (flatness(np.zeros((4, 5), int)) == 1).all()
    assert flatness(np.eye(5, dtype=int))[2, 2] == 2 / 8


@pytest.mark.parametrize("space", SPACES)
def test_adaptive_equals_reference_on_a_photo_with_a_large_palette(small_photo, space):
    rng = np.random.default_rng(12)
    crop = small_photo[:40, :50]
    palette = from_srgb8(to_working(rng.integers(0, 256, (200, 3)).astype(np.uint8), space),
                         space)
    np.testing.assert_array_equal(
        dither(crop, palette, space=space),
        naive_adaptive(to_working(crop, space), to_working(palette, space), 1.0,
                       gamut_bounds(space)))


@pytest.mark.parametrize("space", SPACES)
def test_kernel_equals_reference_on_a_photo_with_a_large_palette(small_photo, space):
    """Many colors and a real image: the accelerated search must still be the exact argmin."""
    rng = np.random.default_rng(11)
    crop = small_photo[:40, :50]
    palette = to_working(rng.integers(0, 256, (200, 3)).astype(np.uint8), space)
    points = to_working(crop, space)
    np.testing.assert_array_equal(floyd_steinberg(points, palette),
                                  naive_floyd_steinberg(points, palette))
    # and what dither(method="floyd-steinberg") does: clipped to the space's sRGB range
    np.testing.assert_array_equal(dither(crop, from_srgb8(palette, space), space=space,
                                         method="floyd-steinberg"),
                                  naive_floyd_steinberg(points, to_working(
                                      from_srgb8(palette, space), space), 1.0,
                                      gamut_bounds(space)))


def from_srgb8(points, space):
    return np.clip(np.rint(from_working(points, space)), 0, 255).astype(np.uint8)


def test_clipping_changes_the_result_where_the_image_leaves_the_palette(small_photo):
    """A palette of dark colors only: unclipped error piles up in the bright areas."""
    palette = np.array([[0, 0, 0], [60, 40, 30], [90, 90, 90]], np.float64)
    points = small_photo.astype(np.float64)
    free = floyd_steinberg(points, palette)
    clipped = floyd_steinberg(points, palette, bounds=gamut_bounds("srgb"))
    assert (free != clipped).mean() > 0.05
    np.testing.assert_array_equal(
        clipped, naive_floyd_steinberg(points, palette, 1.0, gamut_bounds("srgb")))


def test_ties_go_to_the_lower_index_like_the_reference():
    """Duplicated palette rows tie on every pixel that picks them."""
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (6, 3)).astype(np.float64)
    palette = np.concatenate([base, base[::-1], base])  # each color three times
    points = rng.integers(0, 256, (10, 11, 3)).astype(np.float64)
    for strength in (0.0, 1.0):
        got = floyd_steinberg(points, palette, strength=strength)
        np.testing.assert_array_equal(got, naive_floyd_steinberg(points, palette, strength))
        assert got.max() < 6  # only first occurrences are ever chosen


@pytest.mark.parametrize("k", [_kd.GRID_MAX_COLORS, _kd.GRID_MAX_COLORS + 1])
@pytest.mark.parametrize("clip", [False, True])
def test_grid_and_walk_searches_both_equal_the_reference(small_photo, k, clip):
    """Palettes up to GRID_MAX_COLORS are searched through the cell grid, larger ones by the
    walk; unclipped error drives values out of the grid's box into its open edge cells."""
    rng = np.random.default_rng(k)
    crop = small_photo[:24, :30].astype(np.float64)
    palette = rng.uniform(0, 255, (k, 3)) ** 2 / 255  # crowded in the dark corner
    bounds = gamut_bounds("srgb") if clip else None
    np.testing.assert_array_equal(
        floyd_steinberg(crop, palette, bounds=bounds),
        naive_floyd_steinberg(crop, palette, 1.0, bounds))


def test_more_than_256_colors_give_uint16_indices_equal_to_the_reference():
    points, palette = _random_case(5, (7, 9), 300, "oklab")
    got = floyd_steinberg(points, palette)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, naive_floyd_steinberg(points, palette))
    assert floyd_steinberg(points, palette[:256]).dtype == np.uint8


@pytest.mark.parametrize("space", SPACES)
def test_strength_zero_is_plain_nearest_color_remap(small_photo, space):
    rng = np.random.default_rng(4)
    palette = to_working(rng.integers(0, 256, (24, 3)).astype(np.uint8), space)
    points = to_working(small_photo, space)
    got = floyd_steinberg(points, palette, strength=0.0)
    expected = nearest(points.reshape(-1, 3), palette).reshape(small_photo.shape[:2])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("space", "white_share"), [
    ("srgb", 128 / 255),                                    # the encoded value itself
    ("linear", to_working(np.uint8([128] * 3), "linear")[0] / 255),  # 0.2158: light mixes
    ("oklab", to_working(np.uint8([128] * 3), "oklab")[0] / 255),    # L = 0.5999
])
def test_flat_mid_gray_on_black_and_white_mixes_to_its_value(space, white_share):
    """Error diffusion keeps the mean: the share of white pixels is the gray's position between
    black and white in the working space (up to the error lost at the image's edges)."""
    gray = np.full((96, 96, 3), 128, np.uint8)
    bw = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    idx = dither(gray, bw, space=space, method="floyd-steinberg")
    assert abs(idx.mean() - white_share) < 0.01
    # the adaptive method too (a flat area is where it dithers), up to its 15/16 level
    assert abs(dither(gray, bw, space=space).mean() - white_share) < 0.05
    if space == "srgb":
        assert abs(idx.mean() - 0.5) < 0.01


def test_flat_gray_is_a_fine_pattern_not_bands():
    gray = np.full((64, 64, 3), 128, np.uint8)
    for method in ("adaptive", "floyd-steinberg"):
        idx = dither(gray, np.array([[0, 0, 0], [255, 255, 255]], np.uint8),
                     method=method).astype(float)
        # every 4x4 block holds about half white: the error does not pile up into regions
        blocks = idx.reshape(16, 4, 16, 4).mean(axis=(1, 3))
        assert blocks.min() >= 0.25 and blocks.max() <= 0.75


@pytest.fixture(scope="module")
def astronaut_k8(astronaut):
    return kmq.quantize(astronaut, 8, seed=0)


def _blurred_mse(image, reference, space):
    """MSE after a Gaussian low-pass (sigma 2 px), both images taken into ``space`` first:
    what is left of the error when seen from a distance. In "linear" the blur mixes light as
    the eye does."""
    def blur(rgb):
        return gaussian(to_working(rgb, space), sigma=2.0, channel_axis=-1, preserve_range=True)
    return float(np.mean((blur(image) - blur(reference)) ** 2))


@pytest.fixture(scope="module")
def astronaut_dithered(astronaut, astronaut_k8):
    palette = astronaut_k8.palette
    return {space: palette[dither(astronaut, palette, space=space)] for space in SPACES}


@pytest.mark.parametrize("space", SPACES)
def test_dithering_lowers_the_error_seen_from_a_distance(astronaut, astronaut_k8,
                                                         astronaut_dithered, space):
    """What dithering is for: low-pass filtered in linear light, a dithered image (in any
    working space) is much closer to the original than the nearest-color one."""
    plain = astronaut_k8.palette[kmq.remap(astronaut, astronaut_k8.palette)]
    dithered = astronaut_dithered[space]
    assert _blurred_mse(dithered, astronaut, "linear") < 0.8 * _blurred_mse(
        plain, astronaut, "linear")
    # ... while pixel by pixel it is further away, as expected
    assert np.mean((dithered.astype(float) - astronaut) ** 2) > np.mean(
        (plain.astype(float) - astronaut) ** 2)


def test_each_space_keeps_its_own_local_means(astronaut, astronaut_k8, astronaut_dithered):
    """Dithering in sRGB lowers the sRGB-blurred error; dithering in linear light gives the
    lowest linear-light-blurred error of the three spaces."""
    plain = astronaut_k8.palette[kmq.remap(astronaut, astronaut_k8.palette)]
    assert _blurred_mse(astronaut_dithered["srgb"], astronaut, "srgb") < 0.9 * _blurred_mse(
        plain, astronaut, "srgb")
    linear_errors = {space: _blurred_mse(img, astronaut, "linear")
                     for space, img in astronaut_dithered.items()}
    assert min(linear_errors, key=linear_errors.get) == "linear"


def test_dither_is_deterministic_and_equals_the_working_space_call(small_photo):
    palette = np.random.default_rng(8).integers(0, 256, (16, 3)).astype(np.uint8)
    a = dither(small_photo, palette, space="oklab", strength=0.8)
    b = dither(small_photo, palette, space="oklab", strength=0.8)
    np.testing.assert_array_equal(a, b)
    c = diffuse(to_working(small_photo, "oklab"), to_working(palette, "oklab"),
                strength=0.8, bounds=gamut_bounds("oklab"))
    np.testing.assert_array_equal(a, c)
    d = floyd_steinberg(to_working(small_photo, "oklab"), to_working(palette, "oklab"),
                        strength=0.8, bounds=gamut_bounds("oklab"))
    np.testing.assert_array_equal(dither(small_photo, palette, space="oklab", strength=0.8,
                                         method="floyd-steinberg"), d)


def test_bad_arguments_say_what_was_expected():
    img = np.zeros((2, 2, 3))
    pal = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"strength to be a number in 0\.\.1; got 1\.5"):
        floyd_steinberg(img, pal, strength=1.5)
    with pytest.raises(ValueError, match=r"strength .* got True"):
        floyd_steinberg(img, pal, strength=True)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) or \(H, W, 4\) image .* got shape \(4, 3\)"):
        floyd_steinberg(np.zeros((4, 3)), pal)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) or \(H, W, 4\) image .* \(2, 2, 5\)"):
        diffuse(np.zeros((2, 2, 5)), pal)
    with pytest.raises(ValueError, match=r"palette of shape \(K, 3\) .* got shape \(0, 3\)"):
        floyd_steinberg(img, np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"palette of shape \(K, 4\) .* got shape \(2, 3\)"):
        diffuse(np.zeros((2, 2, 4)), pal)
    with pytest.raises(ValueError, match="dithering method"):
        diffuse(img, pal, method="ordered")
    with pytest.raises(ValueError, match="boolean mask of shape"):
        diffuse(img, pal, transparent=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="expected transparent_index, or a 4-channel"):
        diffuse(img, pal, transparent=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"index into the palette \(0\.\.\.1\); got 2"):
        diffuse(img, pal, transparent=np.zeros((2, 2), bool), transparent_index=2)
    with pytest.raises(ValueError, match="finite points"):
        floyd_steinberg(np.full((2, 2, 3), np.nan), pal)
    with pytest.raises(ValueError, match="low <= high"):
        floyd_steinberg(img, pal, bounds=([0, 0, 0], [1, -1, 1]))
    with pytest.raises(ValueError, match="bounds to be"):
        floyd_steinberg(img, pal, bounds=[0, 255])
    with pytest.raises(ValueError, match="color space"):
        dither(np.zeros((2, 2, 3), np.uint8), pal.astype(np.uint8), space="hsv")


@pytest.mark.parametrize("space", ["srgb", "wsrgb", "linear"])
@pytest.mark.parametrize("k", [16, 64, 256])
def test_quantize_dithers_as_dither_does_on_its_palette(coffee, k, space):
    # in these spaces quantize hands dithering the nearest colors it already has (its first
    # pass): the indices must be the same, ties (to the lower index of the ordered palette)
    # included
    photo = np.ascontiguousarray(coffee[:200, :300])
    for strength in (0.5, 1.0):
        q = kmq.quantize(photo, k, color_space=space, dither=strength)
        np.testing.assert_array_equal(q.indices,
                                      dither(photo, q.palette, space=space, strength=strength))
        assert q.mse == pytest.approx(np.mean((q.to_rgb().astype(float) - photo) ** 2))


def test_diffuse_from_nearest_equals_diffuse_and_says_what_it_expected(small_photo):
    from kmq.colorspace import gamut_bounds, to_working

    bounds = gamut_bounds("linear")
    pts = to_working(small_photo, "linear")
    pal = to_working(kmq.quantize(small_photo, 12).palette, "linear")
    near = diffuse(pts, pal, strength=0.0, bounds=bounds)
    for strength in (0.0, 0.4, 1.0):
        np.testing.assert_array_equal(
            diffuse_from_nearest(pts, pal, near, strength=strength, bounds=bounds),
            diffuse(pts, pal, strength=strength, bounds=bounds))
    for args, match in (((pts, pal, near[1:]), "shape"), ((pts, pal, near + 12), "in 0..11"),
                        ((pts, pal, near.astype(float)), "integer indices"),
                        ((pts, pal[:, :2], near), r"palette of shape \(K, 3\)"),
                        ((np.zeros((2, 2, 4)), np.zeros((2, 4)), np.zeros((2, 2), int)),
                         "3 channels")):
        with pytest.raises(ValueError, match=match):
            diffuse_from_nearest(*args)


def test_dither_from_nearest_with_its_error_given_equals_dither_on_a_photo(small_photo):
    # in sRGB the caller may pass the nearest colors' error, an exact sum of integers
    from kmq.colorspace import gamut_bounds

    palette = kmq.quantize(small_photo, 12).palette
    d2 = ((small_photo[:, :, None, :].astype(float) - palette) ** 2).sum(axis=3)
    near = d2.argmin(axis=2)  # the first of equals: the lower index
    mse = float(d2.min(axis=2).sum()) / d2[:, :, 0].size
    for strength in (0.0, 0.3, 1.0):
        np.testing.assert_array_equal(
            diffuse_from_nearest(small_photo, palette, near, strength=strength,
                                 bounds=gamut_bounds("srgb"), nearest_mse=mse),
            dither(small_photo, palette, strength=strength))
