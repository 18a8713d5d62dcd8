"""The colour side of SSIMULACRA2: 8-bit sRGB to planar linear RGB, halving, and XYB.

Linear RGB by table look-ups two samples at a time; the 2x2 box halving the six scales
take; the XYB colour space (made positive) as two 3x3 products over planar float32
arrays, strip by strip (``STRIP`` samples: a formula's operations stay in the L2 cache).
No Python loop touches pixels.

Touches no files; pure functions of pictures and arrays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Samples per strip of the element-wise work: ~32K (128 KB float32), so the dozen
# operations of a formula run on arrays that stay in the core's L2 cache instead of
# streaming whole planes through memory once per operation (~1.3x faster per score).
STRIP = 32768
_BIAS = 0.0037930732552754493
_OPSIN = [
    [0.30, 1.0 - 0.078 - 0.30, 0.078],
    [0.23, 1.0 - 0.078 - 0.23, 0.078],
    [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
]
_V = np.arange(256, dtype=np.float64) / 255
LUT = np.where(_V <= 0.04045, _V / 12.92, ((_V + 0.055) / 1.055) ** 2.4).astype(np.float32)
# XYB, made positive, as one linear map of the cube roots of the opsin mix:
# X = 14 * (m0 - m1) / 2 + 0.42, Y = (m0 + m1) / 2 + 0.01, B = m2 - Y_raw + 0.55,
# with m = cbrt(mix) - cbrt(bias) (the constant folded into the offsets).
_CB = _BIAS ** (1 / 3)
_OPSIN_M = np.array(_OPSIN, dtype=np.float32)
_TO_XYB_M = np.array([[7.0, -7.0, 0.0], [0.5, 0.5, 0.0], [-0.5, -0.5, 1.0]], np.float32)
_XYB_OFFSET = np.array([0.42, 0.01 - _CB, 0.55], dtype=np.float32)


def xyb(linear: np.ndarray, want: tuple[bool, bool, bool] = (True, True, True)) -> list:
    """Positive XYB planes of a (3, h, w) planar linear RGB array (None for a channel not
    in ``want``: X and Y need two of the three cube roots, B all three)."""
    # The opsin weights and bias are positive and linear RGB is in [0, 1], so the mix is
    # in (0, 1 + bias]: the published clamp to zero never acts here. Planar (3, N) by 3x3
    # products are two BLAS calls, far cheaper than (h, w, 3) @ (3, 3).
    _, h, w = linear.shape
    mixes = 3 if want[2] else 2
    rows = [c for c in range(3) if want[c]]
    opsin, to_xyb = _OPSIN_M[:mixes], np.ascontiguousarray(_TO_XYB_M[rows][:, :mixes])
    offset = _XYB_OFFSET[rows][:, None]
    flat = linear.reshape(3, -1)
    got = np.empty((len(rows), flat.shape[1]), dtype=np.float32)
    mix = np.empty((mixes, min(STRIP, flat.shape[1])), dtype=np.float32)
    for a in range(0, flat.shape[1], STRIP):  # in strips that stay in cache
        chunk = flat[:, a : a + STRIP]
        m = mix[:, : chunk.shape[1]]
        np.matmul(opsin, chunk, out=m)
        m += _BIAS
        np.cbrt(m, out=m)
        out = got[:, a : a + STRIP]
        np.matmul(to_xyb, m, out=out)
        out += offset
    planes = iter(got.reshape(len(rows), h, w))
    return [next(planes) if want[c] else None for c in range(3)]


_QUARTERS = np.array([0.25, 0.25], dtype=np.float32)


def halve(linear: np.ndarray) -> np.ndarray:
    """2x2 box average of planar (3, h, w); an odd last row or column averages what it
    has (libjxl clamps coordinates, which for a factor of two is the same)."""
    _, h, w = linear.shape
    h2, w2 = h // 2, w // 2
    out = np.empty((3, (h + 1) // 2, (w + 1) // 2), dtype=np.float32)
    # Pairs of rows first (contiguous, cheap), then pairs of columns of that as a product
    # with (1/4, 1/4) (BLAS reads the pairs faster than two strided views; the same sums:
    # a quarter of each, then their sum, is exactly a quarter of theirs).
    rows = linear[:, 0 : 2 * h2 : 2, : 2 * w2] + linear[:, 1 : 2 * h2 : 2, : 2 * w2]
    np.matmul(rows.reshape(3, h2, w2, 2), _QUARTERS, out=out[:, :h2, :w2])
    if w % 2:  # the last column: its pairs of rows
        col = out[:, :h2, w2]
        np.add(linear[:, 0 : 2 * h2 : 2, w - 1], linear[:, 1 : 2 * h2 : 2, w - 1], out=col)
        col *= 0.5
    if h % 2:  # the last row: its pairs of columns
        row = out[:, h2, :w2]
        np.add(linear[:, h - 1, 0 : 2 * w2 : 2], linear[:, h - 1, 1 : 2 * w2 : 2], out=row)
        row *= 0.5
    if h % 2 and w % 2:
        out[:, h2, w2] = linear[:, h - 1, w - 1]
    return out


def _pair_lut() -> np.ndarray:
    """``LUT`` for two samples at once: entry ``a + 256 * b`` holds the float32 pair
    (LUT[a], LUT[b]) as one uint64, so a look-up by the uint16 view of two adjacent uint8
    samples writes both (little-endian, as the views are read back). 512 KB."""
    i = np.arange(65536)
    pairs = np.stack([LUT[i & 255], LUT[i >> 8]], axis=1).astype(np.float32)
    if not np.little_endian:  # pragma: no cover
        pairs = pairs[:, ::-1].copy()
    return pairs.view(np.uint64).reshape(-1)


_PAIR_LUT = _pair_lut()


def linear(im: Image.Image) -> np.ndarray:
    """Planar (3, h, w) linear RGB of ``im``: each 8-bit channel packed on its own by Pillow
    (no interleaved copy to transpose: ~2x cheaper), then table look-ups two samples at a
    time (``_pair_lut``; ``mode="clip"`` skips the bounds checks, which uint16 indices into
    65536 entries cannot fail)."""
    if im.mode != "RGB":
        im = im.convert("RGB")
    w, h = im.size
    planar = np.empty((3, h, w), dtype=np.uint8)
    for c, band in enumerate("RGB"):
        planar[c] = np.frombuffer(im.tobytes("raw", band), dtype=np.uint8).reshape(h, w)
    out = np.empty(planar.shape, dtype=np.float32)
    flat, dest = planar.reshape(-1), out.reshape(-1)
    even = flat.size - flat.size % 2
    np.take(_PAIR_LUT, flat[:even].view(np.uint16), mode="clip", out=dest[:even].view(np.uint64))
    if even < flat.size:
        dest[-1] = LUT[flat[-1]]
    return out
