"""Color spaces against published reference values, scikit-image, and exact 8-bit round trips."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import color as skcolor
from skimage.color import colorconv

from kmq import colorspace as cs
from kmq.colorspace import SPACES, from_working, to_working

# Björn Ottosson, "A perceptual color space for image processing" (2020),
# https://bottosson.github.io/posts/oklab/, "Table of example XYZ and Oklab pairs"
# (values printed to three decimals).
OTTOSSON_XYZ_OKLAB = [
    ((0.950, 1.000, 1.089), (1.000, 0.000, 0.000)),
    ((1.000, 0.000, 0.000), (0.450, 1.236, -0.019)),
    ((0.000, 1.000, 0.000), (0.922, -0.671, 0.263)),
    ((0.000, 0.000, 1.000), (0.153, -1.415, -0.449)),
]
TABLE_HALF_UNIT = 0.0005

# CSS Color 4 (https://www.w3.org/TR/css-color-4/) and its web-platform-tests: sRGB colors and
# their OKLCh (L, C, h in degrees), as printed there. The CSS matrices were re-derived in float64
# from Ottosson's, so besides the printed rounding a few 1e-5 of difference are allowed.
CSS_OKLCH = [
    # the sRGB primaries as CSS Color 4 prints them (e.g. oklch(62.8% 0.2577 29.23) for red)
    ((255, 0, 0), (0.628, 0.2577, 29.23), (5e-4, 5e-5, 5e-3)),
    ((0, 255, 0), (0.8664, 0.2948, 142.5), (5e-5, 5e-5, 5e-2)),
    ((0, 0, 255), (0.452, 0.3132, 264.05), (5e-4, 5e-5, 5e-3)),
    # wpt css/css-color/oklch-011.html: green #008000 is oklch(51.975% 44.215% 142.495),
    # C in percent of 0.4
    ((0, 128, 0), (0.51975, 0.44215 * 0.4, 142.495), (5e-6, 5e-6 * 0.4 + 2e-6, 5e-4)),
]
# wpt css/css-color/oklch-004.html and oklch-006.html: OKLCh -> sRGB in percent (3 decimals).
CSS_OKLCH_TO_SRGB = [
    ((0.50, 0.20, 0.0), (70.492, 2.351, 37.073)),
    ((0.80, 0.15, 160.0), (32.022, 85.805, 61.147)),
]


def _lab_from_lch(lightness, chroma, hue_degrees):
    h = np.radians(hue_degrees)
    return np.array([lightness, chroma * np.cos(h), chroma * np.sin(h)])


def _all_levels_grid(step: int = 1) -> np.ndarray:
    levels = np.arange(0, 256, step, dtype=np.uint8)
    return np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)


def _cube_surface() -> np.ndarray:
    """Every 8-bit color with at least one channel at 0 or 255 (where gamut edges are)."""
    levels = np.arange(256, dtype=np.uint8)
    a, b = (x.ravel() for x in np.meshgrid(levels, levels, indexing="ij"))
    faces = []
    for fixed in (0, 255):
        f = np.full_like(a, fixed)
        faces += [np.stack(c, 1) for c in ((f, a, b), (a, f, b), (a, b, f))]
    return np.concatenate(faces)


# ---------------------------------------------------------------------------------------------
# Published reference values


def test_white_is_l1_a0_b0():
    lab = cs.linear_to_oklab([1.0, 1.0, 1.0])
    np.testing.assert_allclose(lab, [1.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(to_working(np.array([255, 255, 255], np.uint8), "oklab"),
                               [255.0, 0.0, 0.0], atol=255e-4)
    np.testing.assert_array_equal(cs.linear_to_oklab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0])


@pytest.mark.parametrize(("xyz", "expected"), OTTOSSON_XYZ_OKLAB)
def test_xyz_to_oklab_matches_ottossons_table(xyz, expected):
    np.testing.assert_allclose(cs.xyz_to_oklab(xyz), expected, rtol=0, atol=TABLE_HALF_UNIT)


@pytest.mark.parametrize(("xyz", "expected"), OTTOSSON_XYZ_OKLAB)
def test_linear_to_oklab_through_skimage_xyz_matrix_matches_table(xyz, expected):
    """The linear-sRGB path, reached through scikit-image's own XYZ -> linear RGB matrix, gives
    the table's values too (to 1e-3: that matrix differs from Ottosson's in the 4th decimal)."""
    linear = np.asarray(xyz) @ colorconv.rgb_from_xyz.T
    np.testing.assert_allclose(cs.linear_to_oklab(linear), expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize(("rgb", "lch", "tol"), CSS_OKLCH)
def test_srgb_to_oklch_matches_css_color_4(rgb, lch, tol):
    lab = to_working(np.array(rgb, np.uint8), "oklab") / cs.SCALE
    got = (lab[0], np.hypot(lab[1], lab[2]), np.degrees(np.arctan2(lab[2], lab[1])) % 360)
    for value, want, t in zip(got, lch, tol, strict=True):
        assert abs(value - want) <= t, (rgb, got, lch)


@pytest.mark.parametrize(("lch", "srgb_percent"), CSS_OKLCH_TO_SRGB)
def test_oklch_to_srgb_matches_css_wpt(lch, srgb_percent):
    srgb = from_working(_lab_from_lch(*lch) * cs.SCALE, "oklab") / cs.SCALE * 100
    np.testing.assert_allclose(srgb, srgb_percent, rtol=0, atol=5e-4 + 2e-4)


def test_published_inverse_matrices_agree_with_computed_ones():
    """Ottosson's printed inverse coefficients (``oklab_to_linear_srgb``). He fitted and printed
    the matrices at float32 precision, so the float64 inverses agree to about 1e-7."""
    np.testing.assert_allclose(cs.OKLAB_TO_LMS, [
        [1.0, 0.3963377774, 0.2158037573],
        [1.0, -0.1055613458, -0.0638541728],
        [1.0, -0.0894841775, -1.2914855480],
    ], rtol=0, atol=1e-7)
    np.testing.assert_allclose(cs.LMS_TO_LINEAR, [
        [4.0767416621, -3.3077115913, 0.2309699292],
        [-1.2684380046, 2.6097574011, -0.3413193965],
        [-0.0041960863, -0.7034186147, 1.7076147010],
    ], rtol=0, atol=5e-9)


def test_srgb_transfer_function_reference_points():
    # IEC 61966-2-1: the knee 0.04045 <-> 0.0031308, and 0.5 -> 0.214041 (a widely quoted value)
    np.testing.assert_allclose(cs.srgb_to_linear([0.04045, 0.5, 1.0]),
                               [0.04045 / 12.92, 0.2140411, 1.0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(cs.linear_to_srgb(0.0031308), 0.04045, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# scikit-image's sRGB gamma


def test_linear_matches_skimage_rgb2xyz_on_every_level():
    """skimage.color.rgb2xyz = its sRGB decoding, then its matrix: ours, then the same matrix."""
    rgb = _all_levels_grid(step=5).reshape(-1, 1, 3)  # 52^3 colors, every channel level 0..255
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.concatenate([rgb, np.stack([levels] * 3, -1)[:, None]])
    ours = (to_working(rgb, "linear") / cs.SCALE) @ colorconv.xyz_from_rgb.T
    np.testing.assert_allclose(ours, skcolor.rgb2xyz(rgb), rtol=0, atol=1e-12)


def test_linear_to_srgb_matches_skimage_xyz2rgb():
    rng = np.random.default_rng(3)
    linear = rng.random((5000, 1, 3))
    xyz = linear @ colorconv.xyz_from_rgb.T
    np.testing.assert_allclose(cs.linear_to_srgb(linear), skcolor.xyz2rgb(xyz), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Round trips and the working-space contract


@pytest.mark.parametrize("space", SPACES)
def test_round_trip_is_exact_on_every_channel_level(space):
    """srgb and linear act per channel: the 256 gray and single-channel levels cover them all."""
    levels = np.arange(256, dtype=np.uint8)
    zeros = np.zeros(256, np.uint8)
    colors = np.concatenate([np.stack(c, 1) for c in ((levels, levels, levels),
                                                       (levels, zeros, zeros),
                                                       (zeros, levels, zeros),
                                                       (zeros, zeros, levels))])
    back = from_working(to_working(colors, space), space)
    np.testing.assert_allclose(back, colors, rtol=0, atol=1e-9)


def test_oklab_round_trip_is_exact_on_cube_surface_and_random_colors():
    rng = np.random.default_rng(7)
    colors = np.concatenate([_cube_surface(),
                             rng.integers(0, 256, (1_000_000, 3)).astype(np.uint8)])
    back = from_working(to_working(colors, "oklab"), "oklab")
    assert np.abs(back - colors).max() < 1e-9
    np.testing.assert_array_equal(np.clip(np.rint(back), 0, 255).astype(np.uint8), colors)


@pytest.mark.parametrize("space", SPACES)
def test_uint8_table_and_float_formula_agree(space):
    colors = _all_levels_grid(step=15)
    np.testing.assert_allclose(to_working(colors, space),
                               to_working(colors.astype(np.float64), space), rtol=0, atol=1e-12)


@pytest.mark.parametrize("space", SPACES)
def test_scale_black_is_zero_and_white_is_255(space):
    got = to_working(np.array([[0, 0, 0], [255, 255, 255]], np.uint8), space)
    white = {"oklab": [255, 0, 0], "wsrgb": 255 * cs.WSRGB_WEIGHTS}.get(space, [255, 255, 255])
    expected = [[0, 0, 0], white]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_shapes_are_kept_and_lightness_is_monotonic():
    img = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3) * 8
    for space in SPACES:
        assert to_working(img, space).shape == (2, 5, 3)
        assert from_working(to_working(img, space), space).shape == (2, 5, 3)
    grays = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    assert np.all(np.diff(to_working(grays, "oklab")[:, 0]) > 0)
    assert np.all(np.diff(to_working(grays, "linear")[:, 0]) > 0)


# ---------------------------------------------------------------------------------------------
# Weighted sRGB (kmq's own weighting: no published reference values; checked by its definition)


def test_wsrgb_distance_is_the_weighted_srgb_distance():
    rng = np.random.default_rng(11)
    a, b = rng.integers(0, 256, (2, 10_000, 3)).astype(np.uint8)
    d2 = np.sum((to_working(a, "wsrgb") - to_working(b, "wsrgb")) ** 2, axis=1)
    diff = a.astype(np.float64) - b
    np.testing.assert_allclose(d2, diff**2 @ (cs.WSRGB_WEIGHTS**2), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(cs.WSRGB_WEIGHTS, [0.85, 1.0, 0.7])
    assert cs.WSRGB_WEIGHTS[1] == 1.0  # green keeps the 0..255 scale


def test_wsrgb_round_trip_and_gamut_bounds():
    colors = _all_levels_grid(step=3)
    back = from_working(to_working(colors, "wsrgb"), "wsrgb")
    np.testing.assert_array_equal(np.clip(np.rint(back), 0, 255).astype(np.uint8), colors)
    assert np.abs(back - colors).max() < 1e-12
    low, high = cs.gamut_bounds("wsrgb")
    np.testing.assert_array_equal(low, [0, 0, 0])
    np.testing.assert_allclose(high, [216.75, 255.0, 178.5], rtol=0, atol=1e-12)
    pts = to_working(_cube_surface(), "wsrgb")
    assert np.all(pts >= low) and np.all(pts <= high)


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError,
                       match=r"space in \('srgb', 'wsrgb', 'linear', 'oklab'\); got 'lab'"):
        to_working(np.zeros((1, 3), np.uint8), "lab")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\); got shape \(4, 4\)"):
        to_working(np.zeros((4, 4), np.uint8), "srgb")
    with pytest.raises(ValueError, match="integer or float dtype; got <U1"):
        from_working(np.array([["a", "b", "c"]]), "oklab")
