"""kmq: image compression by true k-means color quantization.

>>> import numpy as np, kmq
>>> img = np.zeros((4, 4, 3), np.uint8); img[:2] = 200
>>> q = kmq.quantize(img, 2)
>>> q.k, q.mse
(2, 0.0)

A result is saved to kmq's own compact format (``.kmq``, see ``docs/FORMAT.md``) and loaded back
bit for bit; ``encode`` and ``decode`` do the same with bytes:

>>> back = kmq.decode(kmq.encode(q.palette, q.indices))
>>> bool((back.to_rgb() == q.palette[q.indices]).all()), back.width, back.height
(True, 4, 4)

The compiled engine (numba) is imported on first use, so ``import kmq`` and ``kmq --help`` stay
fast.
"""

from kmq.errors import (
    CancelledError,
    CorruptFileError,
    ImageReadError,
    ImageTooLargeError,
    KmqError,
    OutputExistsError,
    QualityTooLowError,
)

__version__ = "0.1.0"

_LAZY = {
    "quantize": "kmq.pipeline",
    "remap": "kmq.pipeline",
    "Quantized": "kmq.pipeline",
    "AlphaDroppedWarning": "kmq.io",
    "save": "kmq.codecs.container",
    "load": "kmq.codecs.container",
    "encode": "kmq.codecs.container",
    "decode": "kmq.codecs.container",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kmq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AlphaDroppedWarning",
    "CancelledError",
    "CorruptFileError",
    "ImageReadError",
    "ImageTooLargeError",
    "KmqError",
    "OutputExistsError",
    "QualityTooLowError",
    "Quantized",
    "__version__",
    "decode",
    "encode",
    "load",
    "quantize",
    "remap",
    "save",
]
