"""Index-map coder kernels: bit packing, and the context-model binary range coder (method 2).

The model and the coder are specified byte for byte in ``docs/FORMAT.md``; every change here is a
format change. Both directions share the context functions below, so the decoder sees the very
contexts the encoder used. Integers are int64 throughout; the range coder keeps its 32-bit state in
int64 and masks explicitly.
"""

from __future__ import annotations

import numpy as np

from kmq._config import jit

#: Probability scale: a probability of a 1 bit is an integer in [P_MIN, P_MAX] out of 2**16.
PROB_BITS = 16
P_INIT = 1 << (PROB_BITS - 1)
P_MIN = 32
P_MAX = (1 << PROB_BITS) - 32
#: Adaptation: the n-th update of a context moves its probability by 1 / 2**min(n, RATE_MAX).
RATE_MAX = 5
#: Candidates (distinct neighbours) tried before the escape, and the flag-context layout.
N_CAND = 4
N_PATTERN = 64
N_ACTIVITY = 16
N_FLAG_CONTEXTS = N_CAND * N_PATTERN * N_ACTIVITY
#: Escape contexts: 2**(nbits + cond_bits) is at most 2**ESC_CONTEXT_BITS.
ESC_CONTEXT_BITS = 20
#: Rank stored per pixel: 0, 1 for the first two candidates, 2 for the others, 3 for an escape.
RANK_ESCAPE = 3

_TOP = 1 << 24
#: A coded decision leaves a range of at least 2**13 (range >= 2**24 before it, and a coded
#: probability of at least P_MIN / 2**16 = 2**-11 either way), so it emits at most 2 bytes; a pixel
#: is at most N_CAND + 16 decisions, and the 5 final shifts emit at most 5 bytes.
_BYTES_PER_PIXEL = 2 * (N_CAND + 16) + 5
_MASK32 = 0xFFFFFFFF

# Status codes of the decoder (anything but OK means corrupt data).
OK = 0
BAD_INDEX = 1
BAD_LENGTH = 2


# --- bit packing (method 1) -----------------------------------------------------------------

@jit
def pack_bits(values, nbits):
    """Pack ``values`` (1-D uint16) at ``nbits`` bits each, MSB first, into bytes (zero padded)."""
    n = values.shape[0]
    out = np.zeros((n * nbits + 7) // 8, np.uint8)
    acc = np.int64(0)
    filled = 0
    pos = 0
    for i in range(n):
        acc = (acc << nbits) | np.int64(values[i])
        filled += nbits
        while filled >= 8:
            filled -= 8
            out[pos] = (acc >> filled) & 0xFF
            pos += 1
        acc &= (np.int64(1) << filled) - 1
    if filled > 0:
        out[pos] = (acc << (8 - filled)) & 0xFF
    return out


@jit
def unpack_bits(data, nbits, n):
    """Inverse of :func:`pack_bits`: ``n`` values of ``nbits`` bits (``data`` long enough)."""
    out = np.empty(n, np.uint16)
    acc = np.int64(0)
    filled = 0
    pos = 0
    mask = (np.int64(1) << nbits) - 1
    for i in range(n):
        while filled < nbits:
            acc = ((acc << 8) | np.int64(data[pos])) & 0xFFFFFF
            pos += 1
            filled += 8
        filled -= nbits
        out[i] = (acc >> filled) & mask
    return out


# --- the shared model -----------------------------------------------------------------------

@jit
def index_bits(k):
    """Bits of one index, ``ceil(log2 k)`` (0 for k == 1)."""
    nb = 0
    while (1 << nb) < k:
        nb += 1
    return nb


@jit
def escape_cond_bits(nbits):
    """Bits of the N neighbour that condition the escape tree."""
    return min(nbits, ESC_CONTEXT_BITS - nbits)


@jit
def neighbours(m, rank, y, x):
    """W, N, NE, NW, WW, NN of pixel (y, x) and the ranks of W and N, with the edge rules."""
    width = m.shape[1]
    if y > 0:
        n = np.int64(m[y - 1, x])
        nw = np.int64(m[y - 1, x - 1]) if x > 0 else n
        ne = np.int64(m[y - 1, x + 1]) if x + 1 < width else n
        nn = np.int64(m[y - 2, x]) if y > 1 else n
        w = np.int64(m[y, x - 1]) if x > 0 else n
        rn = np.int64(rank[y - 1, x])
    else:
        w = np.int64(m[y, x - 1]) if x > 0 else np.int64(0)
        n = w
        nw = w
        ne = w
        nn = w
        rn = np.int64(0)
    ww = np.int64(m[y, x - 2]) if x > 1 else w
    rw = np.int64(rank[y, x - 1]) if x > 0 else rn
    return w, n, ne, nw, ww, nn, rw, rn


@jit
def flag_context_base(w, n, ne, nw, ww, nn, rw, rn):
    """The candidate-independent part of the flag context: equality pattern and activity."""
    pat = (np.int64(w == n) | (np.int64(n == ne) << 1) | (np.int64(w == nw) << 2)
           | (np.int64(n == nw) << 3) | (np.int64(w == ww) << 4) | (np.int64(n == nn) << 5))
    return pat * N_ACTIVITY + rw * 4 + rn


@jit
def candidates(cand, w, n, ne, nw, ww, nn):
    """Fill ``cand`` with the first N_CAND distinct values of (W, N, NE, NW, WW, NN)."""
    cand[0] = w
    nc = 1
    if n != w:
        cand[1] = n
        nc = 2
    nc = _add(cand, nc, ne)
    nc = _add(cand, nc, nw)
    nc = _add(cand, nc, ww)
    nc = _add(cand, nc, nn)
    return nc


@jit
def _add(cand, nc, c):
    if nc == N_CAND:
        return nc
    for j in range(nc):
        if cand[j] == c:
            return nc
    cand[nc] = c
    return nc + 1


# --- range coder --------------------------------------------------------------------------------
# An LZMA-style binary range coder with a 32-bit range and a 33-bit ``low``: a finished byte is held
# back (``cache`` plus ``pending`` 0xFF bytes) until a carry into it is no longer possible. The
# encoder and decoder loops below code bits at hand-inlined sites (helper calls that pass arrays
# cost more than the coding itself); :func:`_shift_low` is the rare slow path.

@jit
def _shift_low(low, cache, pending, pos, first, buf):
    """Emit the held-back bytes if ``low`` can no longer carry into them; shift ``low`` by 8."""
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = cache
        while True:
            if first:
                first = 0  # the very first byte is always 0 and is not written
            else:
                buf[pos] = (temp + carry) & 0xFF
                pos += 1
            temp = 0xFF
            pending -= 1
            if pending == 0:
                break
        cache = (low >> 24) & 0xFF
    pending += 1
    low = (low & 0x00FFFFFF) << 8
    return low, cache, pending, pos, first


# --- method 2: context model + range coder ----------------------------------------------------
# Every decision is predicted by two contexts, one in each of two models, and coded with the mean
# of their probabilities; both are then adapted. A context's state is one uint32,
# ``p << 8 | n`` (probability of a 1 and update count). One table holds all contexts, at these
# offsets:
#   flag A  [0, N_FLAG_CONTEXTS)           candidate, equality pattern, ranks of W and N
#   flag B  [fb, fb + N_CAND * k * 4)      candidate, its value, W == N, N == NE
#   escape A, escape B (2**(nbits + cbits) each): tree node, top cbits of N (A) or of W (B)


@jit
def model_layout(k):
    """(nbits, cshift, flag-B offset, escape-A offset, escape-B offset, table size) for ``k``."""
    nbits = index_bits(k)
    cbits = escape_cond_bits(nbits)
    fb = N_FLAG_CONTEXTS
    ea = fb + N_CAND * k * 4
    eb = ea + (1 << (nbits + cbits))
    return nbits, nbits - cbits, fb, ea, eb, eb + (1 << (nbits + cbits))


@jit
def cm_encode(m, k):
    """Code the (H, W) uint16 index map ``m`` (values < k, k >= 2) as method-2 payload bytes."""
    height, width = m.shape
    nbits, cshift, fb, ea, eb, size = model_layout(k)
    state = np.full(size, P_INIT << 8, np.uint32)
    rank = np.zeros((height, width), np.uint8)
    cand = np.zeros(N_CAND, np.int64)
    ctx_a = np.zeros(N_CAND + 16, np.int64)
    ctx_b = np.zeros(N_CAND + 16, np.int64)
    bits = np.zeros(N_CAND + 16, np.int64)
    low, rng, cache, pending, pos, first = 0, _MASK32, 0, 1, 0, 1
    buf = np.zeros(max(1024, height * width // 4), np.uint8)
    for y in range(height):
        for x in range(width):
            # Room for this pixel at the worst case, plus the bytes still pending.
            need = pos + pending + _BYTES_PER_PIXEL
            if need > buf.shape[0]:
                grown = np.zeros(max(2 * buf.shape[0], need), np.uint8)
                grown[:pos] = buf[:pos]
                buf = grown
            v = np.int64(m[y, x])
            w, n, ne, nw, ww, nn, rw, rn = neighbours(m, rank, y, x)
            base = flag_context_base(w, n, ne, nw, ww, nn, rw, rn)
            eq2 = np.int64(w == n) + 2 * np.int64(n == ne)
            nc = candidates(cand, w, n, ne, nw, ww, nn)
            # The decisions of this pixel: candidate flags up to the hit, else all-0 flags and
            # the escape tree.
            nd = 0
            r = RANK_ESCAPE
            for j in range(nc):
                hit = np.int64(cand[j] == v)
                ctx_a[nd] = j * (N_PATTERN * N_ACTIVITY) + base
                ctx_b[nd] = fb + (j * k + cand[j]) * 4 + eq2
                bits[nd] = hit
                nd += 1
                if hit:
                    r = min(j, 2)
                    break
            if r == RANK_ESCAPE:
                base_a = ea + ((n >> cshift) << nbits)
                base_b = eb + ((w >> cshift) << nbits)
                node = 1
                for b in range(nbits - 1, -1, -1):
                    bit = (v >> b) & 1
                    ctx_a[nd] = base_a + node
                    ctx_b[nd] = base_b + node
                    bits[nd] = bit
                    nd += 1
                    node = 2 * node + bit
            rank[y, x] = r
            for d in range(nd):
                ca = ctx_a[d]
                cb = ctx_b[d]
                bit = bits[d]
                ta = np.int64(state[ca])
                pa = ta >> 8
                tb = np.int64(state[cb])
                pb = tb >> 8
                na = ta & 0xFF
                nb = tb & 0xFF
                sa = min(na + 1, RATE_MAX)
                sb = min(nb + 1, RATE_MAX)
                bound = (rng >> PROB_BITS) * ((pa + pb) >> 1)
                if bit:
                    rng = bound
                    pa += ((1 << PROB_BITS) - pa) >> sa
                    pb += ((1 << PROB_BITS) - pb) >> sb
                else:
                    low += bound
                    rng -= bound
                    pa -= pa >> sa
                    pb -= pb >> sb
                state[ca] = (min(max(pa, P_MIN), P_MAX) << 8) | sa
                state[cb] = (min(max(pb, P_MIN), P_MAX) << 8) | sb
                while rng < _TOP:
                    rng = (rng << 8) & _MASK32
                    low, cache, pending, pos, first = _shift_low(low, cache, pending, pos, first,
                                                                 buf)
    for _ in range(5):
        low, cache, pending, pos, first = _shift_low(low, cache, pending, pos, first, buf)
    return buf[:pos].copy()


@jit
def cm_decode(data, height, width, k):
    """Decode a method-2 payload into an (H, W) uint16 map; returns (map, status).

    Reads past the end of ``data`` yield zero bytes; the status is BAD_LENGTH unless exactly
    ``len(data)`` bytes were consumed, BAD_INDEX for a rank >= k. Work is bounded by H * W.
    """
    nbits, cshift, fb, ea, eb, size = model_layout(k)
    leaf = np.int64(1) << nbits
    state = np.full(size, P_INIT << 8, np.uint32)
    m = np.zeros((height, width), np.uint16)
    rank = np.zeros((height, width), np.uint8)
    cand = np.zeros(N_CAND, np.int64)
    end = data.shape[0]
    rng, code, pos = np.int64(_MASK32), np.int64(0), 0
    for _ in range(4):
        byte = np.int64(data[pos]) if pos < end else np.int64(0)
        pos += 1
        code = ((code << 8) | byte) & _MASK32
    for y in range(height):
        for x in range(width):
            w, n, ne, nw, ww, nn, rw, rn = neighbours(m, rank, y, x)
            base = flag_context_base(w, n, ne, nw, ww, nn, rw, rn)
            eq2 = np.int64(w == n) + 2 * np.int64(n == ne)
            nc = candidates(cand, w, n, ne, nw, ww, nn)
            # The candidate flags, then (if none hit) the escape tree: the same bit decoding,
            # written out twice.
            r = RANK_ESCAPE
            v = np.int64(0)
            for j in range(nc):
                ca = j * (N_PATTERN * N_ACTIVITY) + base
                cb = fb + (j * k + cand[j]) * 4 + eq2
                ta = np.int64(state[ca])
                pa = ta >> 8
                tb = np.int64(state[cb])
                pb = tb >> 8
                na = ta & 0xFF
                nb = tb & 0xFF
                sa = min(na + 1, RATE_MAX)
                sb = min(nb + 1, RATE_MAX)
                bound = (rng >> PROB_BITS) * ((pa + pb) >> 1)
                if code < bound:
                    rng = bound
                    bit = 1
                    pa += ((1 << PROB_BITS) - pa) >> sa
                    pb += ((1 << PROB_BITS) - pb) >> sb
                else:
                    code -= bound
                    rng -= bound
                    bit = 0
                    pa -= pa >> sa
                    pb -= pb >> sb
                state[ca] = (min(max(pa, P_MIN), P_MAX) << 8) | sa
                state[cb] = (min(max(pb, P_MIN), P_MAX) << 8) | sb
                while rng < _TOP:
                    byte = np.int64(data[pos]) if pos < end else np.int64(0)
                    pos += 1
                    rng = (rng << 8) & _MASK32
                    code = ((code << 8) | byte) & _MASK32
                if bit:
                    r = min(j, 2)
                    v = cand[j]
                    break
            if r == RANK_ESCAPE:
                base_a = ea + ((n >> cshift) << nbits)
                base_b = eb + ((w >> cshift) << nbits)
                node = np.int64(1)
                while node < leaf:
                    ca = base_a + node
                    cb = base_b + node
                    ta = np.int64(state[ca])
                    pa = ta >> 8
                    tb = np.int64(state[cb])
                    pb = tb >> 8
                    na = ta & 0xFF
                    nb = tb & 0xFF
                    sa = min(na + 1, RATE_MAX)
                    sb = min(nb + 1, RATE_MAX)
                    bound = (rng >> PROB_BITS) * ((pa + pb) >> 1)
                    if code < bound:
                        rng = bound
                        bit = 1
                        pa += ((1 << PROB_BITS) - pa) >> sa
                        pb += ((1 << PROB_BITS) - pb) >> sb
                    else:
                        code -= bound
                        rng -= bound
                        bit = 0
                        pa -= pa >> sa
                        pb -= pb >> sb
                    state[ca] = (min(max(pa, P_MIN), P_MAX) << 8) | sa
                    state[cb] = (min(max(pb, P_MIN), P_MAX) << 8) | sb
                    while rng < _TOP:
                        byte = np.int64(data[pos]) if pos < end else np.int64(0)
                        pos += 1
                        rng = (rng << 8) & _MASK32
                        code = ((code << 8) | byte) & _MASK32
                    node = 2 * node + bit
                v = node - leaf
                if v >= k:
                    return m, BAD_INDEX
            m[y, x] = v
            rank[y, x] = r
        if pos > end + 4:
            return m, BAD_LENGTH
    if pos != end:
        return m, BAD_LENGTH
    return m, OK
