"""A Display P3 ICC profile for tests, built from the published definition.

Display P3 (Apple; CSS Color 4's ``display-p3``): DCI-P3 primaries, a D65 white point and the sRGB
transfer curve. The profile is a version 2 matrix/TRC display profile (ICC.1:2001-04) as cameras and
phones embed: colorants are the primaries' XYZ adapted to the D50 connection space with the Bradford
transform, and each channel's curve is the sRGB curve sampled at 4096 points. The matrices are CSS
Color Module Level 4's (section 18, "Sample code for color conversions"), which the tests also use,
independently of LittleCMS, as the reference conversion.
"""

from __future__ import annotations

import struct

import numpy as np

#: Linear Display P3 -> XYZ (D65), CSS Color 4.
P3_TO_XYZ = np.array([
    [608311 / 1250200, 189793 / 714400, 198249 / 1000160],
    [35783 / 156275, 247089 / 357200, 198249 / 2500400],
    [0, 32229 / 714400, 5220557 / 5000800],
])
#: XYZ (D65) -> linear sRGB, CSS Color 4.
XYZ_TO_SRGB = np.array([
    [3.2409699419045226, -1.537383177570094, -0.4986107602930034],
    [-0.9692436362808796, 1.8759675015077202, 0.04155505740717559],
    [0.05563007969699366, -0.20397695888897652, 1.0569715142428786],
])
#: Bradford chromatic adaptation D65 -> D50, CSS Color 4.
D65_TO_D50 = np.array([
    [1.0479297925449969, 0.022946870601609652, -0.05019226628920524],
    [0.02962780877005599, 0.9904344267538799, -0.017073799063418826],
    [-0.009243040646204504, 0.015055191490298152, 0.7518742814281371],
])
D50 = (0.9642, 1.0, 0.8249)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """The sRGB (and Display P3) transfer curve, encoded 0..1 -> linear 0..1."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    """Linear 0..1 -> encoded 0..1."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def p3_to_srgb8(p3: np.ndarray) -> np.ndarray:
    """8-bit Display P3 colors (N, 3) -> sRGB (N, 3) float in 0..255, clipped to the gamut."""
    linear = srgb_decode(np.asarray(p3, np.float64) / 255.0)
    return 255.0 * srgb_encode(linear @ P3_TO_XYZ.T @ XYZ_TO_SRGB.T)


def _s15f16(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15f16(v) for v in xyz)


def _curve_tag() -> bytes:
    table = np.rint(srgb_decode(np.linspace(0.0, 1.0, 4096)) * 65535).astype(">u2")
    return b"curv" + bytes(4) + struct.pack(">I", len(table)) + table.tobytes()


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_
            + bytes(8) + bytes(3) + bytes(67))


def _text_tag(text: str) -> bytes:
    return b"text" + bytes(4) + text.encode("ascii") + b"\0"


def display_p3_profile() -> bytes:
    """The bytes of a Display P3 ICC profile (version 2.1, display class, matrix/TRC)."""
    colorants = D65_TO_D50 @ P3_TO_XYZ  # columns: the red, green and blue primaries at D50
    curve = _curve_tag()
    tags = [
        (b"desc", _desc_tag("Display P3 (kmq tests)")),
        (b"cprt", _text_tag("No copyright, use freely")),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    for signature, body in tags:
        table.append(struct.pack(">4sII", signature, offset + len(data), len(body)))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"mntr" + b"RGB "
              + b"XYZ " + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(4)
              + bytes(4) + bytes(4) + bytes(4) + bytes(8) + struct.pack(">I", 0)
              + b"".join(_s15f16(v) for v in D50) + bytes(4) + bytes(16))
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data
