"""kmq: image compression by true k-means color quantization.

>>> import numpy as np, kmq
>>> img = np.zeros((4, 4, 3), np.uint8); img[:2] = 200
>>> q = kmq.quantize(img, 2)
>>> q.k, q.mse
(2, 0.0)
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
from kmq.io import AlphaDroppedWarning
from kmq.pipeline import Quantized, quantize, remap

__version__ = "0.1.0"

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
    "quantize",
    "remap",
]
