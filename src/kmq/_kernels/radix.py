"""What the kernels' radix sorts share."""

from __future__ import annotations

from kmq._config import jit


@jit(inline="always")
def counts_to_starts(counts):
    """Turn a radix pass's digit counts into each digit's first output slot, in place (an
    exclusive running sum: digit 0 starts at 0, digit ``b`` after all smaller digits)."""
    total = 0
    for b in range(counts.shape[0]):
        c = counts[b]
        counts[b] = total
        total += c
