"""Slow pure-Python references for the coder kernels in ``kmq._kernels.coder``.

Written from ``docs/FORMAT.md`` (sections "Method 1" and "Method 2"), not from the kernels: plain
Python integers, bit strings for the packing, contexts as tuples naming what they condition on (no
table offsets), one pixel at a time. Only for small images.
"""

from __future__ import annotations

import numpy as np

P_INIT, P_MIN, P_MAX, RATE_MAX = 32768, 32, 65504, 5


def pack_bits(values, nbits: int) -> bytes:
    """Every value as ``nbits`` binary digits, MSB first, concatenated, zero padded to bytes."""
    bits = "".join(format(int(v), f"0{nbits}b") for v in values)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def index_bits(k: int) -> int:
    return (k - 1).bit_length()


def context_of(m, rank, y, x):
    """(W, N, NE, NW, WW, NN, rank W, rank N) of pixel (y, x) under the spec's edge rules."""
    width = len(m[0])
    if y == 0:
        w = m[y][x - 1] if x >= 1 else 0
        n = ne = nw = nn = w
        rn = 0
    else:
        n = m[y - 1][x]
        w = m[y][x - 1] if x >= 1 else n
        nw = m[y - 1][x - 1] if x >= 1 else n
        ne = m[y - 1][x + 1] if x + 1 <= width - 1 else n
        nn = m[y - 2][x] if y >= 2 else n
        rn = rank[y - 1][x]
    ww = m[y][x - 2] if x >= 2 else w
    rw = rank[y][x - 1] if x >= 1 else rn
    return w, n, ne, nw, ww, nn, rw, rn


def candidate_list(w, n, ne, nw, ww, nn):
    out = []
    for c in (w, n, ne, nw, ww, nn):
        if c not in out and len(out) < 4:
            out.append(c)
    return out


def flag_contexts(j, cand, w, n, ne, nw, ww, nn, rw, rn):
    """The flag contexts of candidate j in model A and in model B."""
    pattern = sum(bit << i for i, bit in enumerate(
        (w == n, n == ne, w == nw, n == nw, w == ww, n == nn)))
    return ("flag A", j, pattern, rw, rn), ("flag B", j, cand, w == n, n == ne)


def escape_contexts(w, n, node, nbits):
    """The escape-tree contexts of ``node`` in model A (top bits of N) and B (of W)."""
    cbits = min(nbits, 20 - nbits)
    top = nbits - cbits
    return ("escape A", n >> top, node), ("escape B", w >> top, node)


class Model:
    """Adaptive probabilities of a 1 bit, one per context (any hashable), created on first use.

    A decision is predicted by a pair of contexts: the mean of their probabilities.
    """

    def __init__(self):
        self.p, self.count = {}, {}

    def prob(self, pair):
        a, b = pair
        return (self.p.get(a, P_INIT) + self.p.get(b, P_INIT)) // 2

    def update(self, pair, bit):
        for ctx in pair:
            p, c = self.p.get(ctx, P_INIT), self.count.get(ctx, 0)
            shift = min(c + 1, RATE_MAX)
            p = p + ((65536 - p) >> shift) if bit else p - (p >> shift)
            self.p[ctx] = min(max(p, P_MIN), P_MAX)
            self.count[ctx] = min(c + 1, RATE_MAX)


class Encoder:
    """The range encoder as the spec states it: a 33-bit ``low``, carry into pending bytes."""

    def __init__(self):
        self.low, self.range = 0, 0xFFFFFFFF
        self.out = bytearray()
        self.cache, self.pending = 0, 1  # the first byte (always 0) is dropped at the end

    def _shift(self):
        if self.low < 0xFF000000 or self.low >= 1 << 32:
            carry = self.low >> 32
            self.out.append((self.cache + carry) & 0xFF)
            self.out.extend([(0xFF + carry) & 0xFF] * (self.pending - 1))
            self.pending = 0
            self.cache = (self.low >> 24) & 0xFF
        self.pending += 1
        self.low = (self.low & 0xFFFFFF) << 8

    def bit(self, bit, p):
        bound = (self.range >> 16) * p
        if bit:
            self.range = bound
        else:
            self.low += bound
            self.range -= bound
        while self.range < 1 << 24:
            self.range = (self.range << 8) & 0xFFFFFFFF
            self._shift()

    def finish(self) -> bytes:
        for _ in range(5):
            self._shift()
        return bytes(self.out[1:])


class Decoder:
    def __init__(self, data: bytes):
        self.data, self.pos, self.range = data, 4, 0xFFFFFFFF
        self.code = int.from_bytes(data[:4].ljust(4, b"\0"), "big")

    def bit(self, p):
        bound = (self.range >> 16) * p
        if self.code < bound:
            self.range, bit = bound, 1
        else:
            self.code -= bound
            self.range -= bound
            bit = 0
        while self.range < 1 << 24:
            byte = self.data[self.pos] if self.pos < len(self.data) else 0
            self.pos += 1
            self.range = (self.range << 8) & 0xFFFFFFFF
            self.code = ((self.code << 8) | byte) & 0xFFFFFFFF
        return bit


def cm_encode(m: np.ndarray, k: int) -> bytes:
    """Method-2 payload of the rank map ``m`` (values < k, k >= 2)."""
    height, width = m.shape
    nbits = index_bits(k)
    mm = m.tolist()
    rank = [[0] * width for _ in range(height)]
    model, enc = Model(), Encoder()
    for y in range(height):
        for x in range(width):
            v = mm[y][x]
            ctx = context_of(mm, rank, y, x)
            r = 3
            for j, c in enumerate(candidate_list(*ctx[:6])):
                f = flag_contexts(j, c, *ctx)
                enc.bit(int(c == v), model.prob(f))
                model.update(f, int(c == v))
                if c == v:
                    r = min(j, 2)
                    break
            if r == 3:
                node = 1
                for b in reversed(range(nbits)):
                    bit = (v >> b) & 1
                    e = escape_contexts(ctx[0], ctx[1], node, nbits)
                    enc.bit(bit, model.prob(e))
                    model.update(e, bit)
                    node = 2 * node + bit
            rank[y][x] = r
    return enc.finish()


def cm_decode(data: bytes, height: int, width: int, k: int):
    """Inverse of :func:`cm_encode`; returns (map, bytes consumed)."""
    nbits = index_bits(k)
    mm = [[0] * width for _ in range(height)]
    rank = [[0] * width for _ in range(height)]
    model, dec = Model(), Decoder(data)
    for y in range(height):
        for x in range(width):
            ctx = context_of(mm, rank, y, x)
            r, v = 3, None
            for j, c in enumerate(candidate_list(*ctx[:6])):
                f = flag_contexts(j, c, *ctx)
                bit = dec.bit(model.prob(f))
                model.update(f, bit)
                if bit:
                    r, v = min(j, 2), c
                    break
            if r == 3:
                node = 1
                for _ in range(nbits):
                    e = escape_contexts(ctx[0], ctx[1], node, nbits)
                    bit = dec.bit(model.prob(e))
                    model.update(e, bit)
                    node = 2 * node + bit
                v = node - (1 << nbits)
            mm[y][x] = v
            rank[y][x] = r
    return np.array(mm, np.uint16), dec.pos
