"""SSIMULACRA2, the perceptual score ``quality: auto`` aims at (numpy and its BLAS).

The published metric (Jon Sneyers, libjxl ``tools/ssimulacra2.cc``): both pictures go
to linear sRGB, then to the XYB colour space (made positive; ``imaging.xyb``); at six
scales, halving in linear RGB each time, a Gaussian blur (``imaging.gauss``) gives local
means and variances, from which a SSIM map and two edge-difference maps (ringing,
blurring) per channel are averaged in the 1- and 4-norms; 108 published weights and a
cubic fit map the sum to a score: 100 identical, 90 visually lossless, 80 very high, 70
high, 50 medium, and lower or negative for heavy distortion. The maps' formulas run strip
by strip (~32K samples: a formula's dozen operations stay in the L2 cache); no Python loop
touches pixels. A ``Reference`` keeps what the comparisons need of the reference,
computed once.

**Lean references** (what ``quality: auto`` scores with) give a proven lower bound of the
published score, at about 60 % of the cost of preparing a reference and 70 % of a comparison's
(2.1 MP: 0.073 s and 0.108 s against 0.124 s and 0.155 s). The published weights fall in two
groups: 81 are zero or at least 0.14, 27 at most 0.0021 (the fit's leftovers). A lean reference
skips every map whose weights are all in the second group (the X and B channels at full
size among them: three of the five full-size blurs), and adds the most those maps could
contribute instead: every map is bounded whatever the pictures (1 - SSIM <= 2, since
the covariance is at most the mean of the variances and 1 - (mu1 - mu2)^2 is in [0, 1];
ringing <= |x - mu| <= 1 and blurring < 1/2 on XYB planes in [0, 0.94]), so the skipped
sum is at most ``_LEAN_SLACK[scales]`` (0.016) and the cubic fit, increasing in the sum,
turns the lean sum plus that into a score no higher than the published one: 0.12 points
lower at most around 75 (0.14 at 80, 0.22 at 90, 1.2 at 100), and in practice nearly all
of that, as the skipped maps stay far below those maxima (the lean sum without the slack,
the upper bound, is within a thousandth). Identical pixels score exactly 100.

Touches no files; pure function of two pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image

from amberpicd.imaging import xyb
from amberpicd.imaging.gauss import blur

SCALES = 6
_C2 = 0.0009
# Rows of the published score's weights: for channel X, Y, B; for each scale; for the
# 1- and 4-norm: the SSIM map, the ringing map, the blurring map.
_WEIGHTS = (
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0,
    0.0004371155730107379, 0.0, 1.1041726426657346, 0.00066284834129271,
    0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0, 1.8422455520539298,
    11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833,
    0.0, 0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053,
    0.0004550992113792063, 0.0, 0.0, 0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0,
    7.466890328078848, 0.0, 17.445833984131262, 0.0006235601634041466, 0.0, 0.0,
    6.683678146179332, 0.00037724407979611296, 1.027889937768264, 225.20515300849274, 0.0,
    0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757,
    0.0004485436923833408, 0.0, 0.0, 0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0,
    8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682,
    0.9834382792465353, 0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0,
    0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
)  # fmt: skip


@dataclass(frozen=True)
class _Plane:
    """What one channel of the reference at one scale contributes to every comparison:
    only the terms the weights ask for (``_needed``), computed once."""

    plane: np.ndarray
    mu: np.ndarray
    var: np.ndarray | None  # blurred square minus squared mean (SSIM)
    inv_edge: np.ndarray | None  # 1 / (1 + |x - mu|) (ringing, blurring: a product is cheaper)


class Reference:
    """A reference picture, prepared once (XYB, means, variances and edge terms at every
    scale) to score several candidate encodes of it: the search's probes pay only for
    the distorted side. ``lean``: skip the maps of negligible weight, and score a proven
    lower bound of the published score (the module's docstring); once a target needs the
    published score, the reference is an exact one from then on."""

    def __init__(self, picture: Image.Image, *, lean: bool = False) -> None:
        self.size = picture.size
        # Kept to tell identical pixels, and for a lean one's exact score when one is needed.
        self._picture, self._lean = picture, lean
        # Scale s has sides ceil(side / 2**s), measured while both are at least 8.
        scales = sum(min(self.size) > 7 * 2**s for s in range(SCALES))
        self._needed = (_LEAN if lean else _NEEDED)[scales]
        self._slack = _LEAN_SLACK[scales] if lean else 0.0
        needed_at = self._needed
        self._scales = _each_scale(
            xyb.linear(picture), len(needed_at), lambda s, lin: _prepare(lin, needed_at[s])
        )

    def bounds(self, distorted: Image.Image) -> tuple[float, float]:
        """The published score of ``distorted`` (same size) lies within these (the same
        number twice for an exact reference; a lean one's are ~0.1 apart around 75)."""
        if distorted.size != self.size:
            raise ValueError(f"sizes differ: {self.size} and {distorted.size}")
        refs, needed_at = self._scales, self._needed
        per_scale = _each_scale(
            xyb.linear(distorted),
            len(refs),
            lambda s, lin: _scale_norms(refs[s], lin, needed_at[s]),
        )
        low, high = _combine(per_scale, self._slack), _combine(per_scale)
        if high > _NEAR_IDENTICAL and _same(self._picture, distorted):
            return 100.0, 100.0  # identical pixels (a lossless output): exactly 100, not 98.8
        return low, high

    def score(self, distorted: Image.Image, target: float | None = None) -> float:
        """The SSIMULACRA2 score of ``distorted`` (same size) against this reference; for
        a lean reference, its lower bound, and the published score itself where the
        bounds alone cannot tell whether it reaches ``target``."""
        low, high = self.bounds(distorted)
        if not self._lean or target is None or low >= target or high < target:
            return low
        # Undecided: from now on an exact reference, its lean planes freed first, so that
        # it never holds more than one (a failure leaves it unusable, never scoring 100).
        self._lean, self._scales = False, None  # type: ignore[assignment]
        exact = Reference(self._picture)
        self._scales, self._needed, self._slack = exact._scales, exact._needed, 0.0
        return self.score(distorted)


# Identical pixels score exactly 100 by comparing them, not by the maps' float sums: those
# leave ~1e-7 where a ratio is computed as a product with a reciprocal, which near 100 shows
# (one sample one level off scores 99.89).
_NEAR_IDENTICAL = 99.5


def _same(a: Image.Image, b: Image.Image) -> bool:
    """Whether the two pictures have the same 8-bit RGB pixels."""
    a, b = (im if im.mode == "RGB" else im.convert("RGB") for im in (a, b))
    return a.tobytes() == b.tobytes()


def _prepare(linear: np.ndarray, needed: list[tuple[int, int, int]]) -> list[_Plane | None]:
    """One scale of a reference: per channel, the terms its maps need (None: no map)."""
    planes: list[_Plane | None] = []
    for c, p in enumerate(xyb.xyb(linear, _channels(needed))):
        want_ssim, want_ring, want_blur = needed[c]
        if p is None:
            planes.append(None)
            continue
        mu = blur(p)
        var = None
        if want_ssim:
            var = blur(p * p)
            var -= mu * mu
        inv_edge = None
        if want_ring or want_blur:
            inv_edge = np.abs(p - mu)
            inv_edge += 1.0
            np.reciprocal(inv_edge, out=inv_edge)
        planes.append(_Plane(p, mu, var, inv_edge))
    return planes


T = TypeVar("T")


def _each_scale(linear: np.ndarray, count: int, fn: Callable[[int, np.ndarray], T]) -> list[T]:
    """``fn(scale, linear RGB at that scale)`` for the first ``count`` scales. No scales (a
    side under 8 px): nothing, as the judge, whose score is then 100. One thread: a helper
    thread taking the smaller scales measured 4 % faster in wall time and 37 % more CPU on
    this 2-core machine (the GIL between numpy's small calls), and the pool already runs a
    worker per core."""
    out, lin = [], linear
    for scale in range(count):
        lin = lin if scale == 0 else xyb.halve(lin)
        out.append(fn(scale, lin))
    return out


def score(reference: Image.Image, distorted: Image.Image) -> float:
    """The SSIMULACRA2 score of ``distorted`` against ``reference`` (same size; modes
    other than RGB are converted, alpha dropped as the PyPI judge does)."""
    return Reference(reference).score(distorted)


# The published weights below this are the fit's leftovers (all <= 0.0021; the others are
# >= 0.14), and the most each kind of map can be, whatever the pictures: 1 - SSIM, ringing,
# blurring (the module's docstring).
_TINY = 0.01
_MAP_MAX = (2.0, 1.0, 0.5)


_ONE, _FOUR = 1, 2  # which norms of a map are summed (a bit each)


def _needed(scale: int, scales: int, floor: float = 0.0) -> list[tuple[int, int, int]]:
    """For X, Y, B at ``scale`` of ``scales``: for the SSIM, ringing and blurring maps,
    which of their norms are summed (``_ONE``, ``_FOUR``; 0: the map is not computed): a
    map whose weights are all at most ``floor`` is not computed, and of the others each
    norm with a non-zero weight is. With under six scales the score reads the weights on,
    channel after channel (``_combine``, as the judge does)."""
    out = []
    for c in range(3):
        w = _weights(c, scale, scales)
        maps = []
        for k in range(3):
            if w[k] > floor or w[3 + k] > floor:
                maps.append((_ONE if w[k] > 0 else 0) | (_FOUR if w[3 + k] > 0 else 0))
            else:
                maps.append(0)
        out.append((maps[0], maps[1], maps[2]))
    return out


def _weights(c: int, scale: int, scales: int) -> tuple[float, ...]:
    base = (c * scales + scale) * 6
    return _WEIGHTS[base : base + 6]  # n=0: ssim, ring, blur; n=1: the same


def _slack(scales: int) -> float:
    """The most the maps a lean reference skips can add to the weighted sum."""
    total = 0.0
    for scale in range(scales):
        lean = _needed(scale, scales, _TINY)
        for c in range(3):
            w = _weights(c, scale, scales)
            for k in range(3):
                if not lean[c][k]:
                    total += (w[k] + w[3 + k]) * _MAP_MAX[k]
    return total


def _channels(needed: list[tuple[int, int, int]]) -> tuple[bool, bool, bool]:
    x, y, b = (any(maps) for maps in needed)
    return x, y, b


_NEEDED = [[_needed(scale, n) for scale in range(n)] for n in range(SCALES + 1)]
_LEAN = [[_needed(scale, n, _TINY) for scale in range(n)] for n in range(SCALES + 1)]
_LEAN_SLACK = [_slack(n) for n in range(SCALES + 1)]


def _strips(h: int, w: int) -> list[slice]:
    step = max(1, xyb.STRIP // w)
    return [slice(a, a + step) for a in range(0, h, step)]


class _Sums:
    """The 1-norm and 4-norm averages of a map, summed strip by strip (float32 pairwise sums
    within a strip, float64 across; the fourth powers as the dot product of the squared
    strip with itself: relative error ~1e-6, far below what the score shows). Only the
    norms in ``which`` (``_ONE``, ``_FOUR``) are summed: the others weigh nothing.
    ``sign``: -1 for a map given negated (the blurring map, as min(r, 0))."""

    def __init__(self, which: int, sign: float = 1.0) -> None:
        self.which, self.sign = which, sign
        self.s1 = self.s4 = 0.0

    def add(self, m: np.ndarray) -> None:
        """Adds ``m`` (a strip of the map; overwritten)."""
        if self.which & _ONE:
            self.s1 += float(m.sum())
        if self.which & _FOUR:
            m *= m
            flat = m.reshape(-1)
            self.s4 += float(np.dot(flat, flat))

    def norms(self, n: int) -> tuple[float, float]:
        return self.sign * self.s1 / n, max(self.s4 / n, 0.0) ** 0.25


def _scale_norms(
    ref: list[_Plane | None], linear: np.ndarray, needed: list[tuple[int, int, int]]
) -> list[list[float]]:
    """For X, Y, B: the SSIM, ringing and blurring maps' 1- and 4-norms at one scale
    (0 for a map whose weights are all zero: not ``needed``)."""
    x2 = xyb.xyb(linear, _channels(needed))
    norms = [[0.0] * 6 for _ in range(3)]  # ssim1, ssim4, ring1, ring4, blur1, blur4
    for c, plane in enumerate(ref):
        if plane is None:
            continue
        want_ssim, want_ring, want_blur = needed[c]
        p2 = x2[c]
        assert p2 is not None
        h, w = p2.shape
        mu2 = blur(p2)
        if want_ssim:
            assert plane.var is not None
            s22, s12 = blur(p2 * p2), blur(plane.plane * p2)
            sums = _Sums(want_ssim)
            for rows in _strips(h, w):
                sums.add(_ssim_strip(plane, mu2, s22, s12, rows))
            norms[c][0:2] = sums.norms(h * w)
        if want_ring or want_blur:
            assert plane.inv_edge is not None
            # (1 + |x2 - mu2|) / (1 + |x1 - mu1|) - 1: ringing is its positive part,
            # blurring its negative part (summed as min(r, 0), whose norms are the same
            # up to the 1-norm's sign).
            ring, blurring = _Sums(want_ring), _Sums(want_blur, -1.0)
            for rows in _strips(h, w):
                ratio = p2[rows] - mu2[rows]
                np.abs(ratio, out=ratio)
                ratio += 1.0
                ratio *= plane.inv_edge[rows]
                ratio -= 1.0
                if want_ring:
                    ring.add(np.maximum(ratio, 0.0) if want_blur else
                             np.maximum(ratio, 0.0, out=ratio))  # fmt: skip
                if want_blur:
                    blurring.add(np.minimum(ratio, 0.0, out=ratio))
            if want_ring:
                norms[c][2:4] = ring.norms(h * w)
            if want_blur:
                norms[c][4:6] = blurring.norms(h * w)
    return norms


def _ssim_strip(
    plane: _Plane, mu2: np.ndarray, s22: np.ndarray, s12: np.ndarray, rows: slice
) -> np.ndarray:
    """The SSIM map (1 - SSIM, at least 0) over ``rows``, summed in the judge's order so
    identical pictures give exactly 100. Overwrites ``s22`` and ``s12`` there."""
    assert plane.var is not None
    mu1, m2 = plane.mu[rows], mu2[rows]
    den = s22[rows]
    t = m2 * m2
    den -= t
    den += plane.var[rows]
    den += _C2  # s11 + s22 + C2
    num = s12[rows]
    np.multiply(mu1, m2, out=t)
    num -= t
    num *= 2.0
    num += _C2
    np.subtract(mu1, m2, out=t)
    t *= t
    np.subtract(1.0, t, out=t)  # num_m
    t *= num
    t /= den
    np.subtract(1.0, t, out=t)
    np.maximum(t, 0.0, out=t)
    return t


# The published cubic fit: increasing, barely (its derivative's discriminant is -1.6e-9,
# its least slope 2e-6 where the score is -64), which the lean bound needs.
_FIT = (2.326765642916932, -0.020884521182843837, 6.248496625763138e-05)


def _combine(per_scale: list[list[list[float]]], slack: float = 0.0) -> float:
    """The score of the maps' norms; ``slack`` is added to their weighted sum first (the
    fit is increasing in it: a lower bound when the sum is known to within ``slack``)."""
    total, i = slack, 0
    for c in range(3):
        for norms in per_scale:
            for n in range(2):
                for kind in range(3):
                    total += _WEIGHTS[i] * abs(norms[c][kind * 2 + n])
                    i += 1
    total *= 0.9562382616834844
    a, b, c = _FIT
    total = a * total + b * total**2 + c * total**3
    return 100.0 - 10.0 * total**0.6276336467831387 if total > 0 else 100.0
