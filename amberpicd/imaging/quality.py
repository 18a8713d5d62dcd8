"""``quality: auto``: the lowest quality whose encode scores at least a SSIMULACRA2 target.

A bracketed search over the format's quality scale: the first probe is predicted from
the target (a table per format, measured on photos), the next ones from the misses (a
typical slope per format, or the flatter one the probes measured, while only one side of
the bracket is known, then Illinois-weighted interpolation between the bracket's ends),
each aiming a little above the target (``_STEER``) so that it tends to pass and end the
search. Where the encoder's settings change (``jump``: JPEG and AVIF switch to 4:4:4 at
q90) scores and sizes leap, so nothing is interpolated across it and a pass above it is
kept only once the quality just below it fails (or surely would). It stops when the
bracket is ``TOLERANCE`` quality steps wide or a passing probe lands within ``NEAR``
points of the target. Every probe costs an encode and a full SSIMULACRA2 comparison, so
the steering trades a few percent of bytes for probes. Simulated on score curves
recorded from the 9 photos and 6 screenshots of benchmarks/compress.py (targets 60, 70,
75, 80, 90; 2026-12-01): 173 probes for JPEG, 196 for WebP, 193 for AVIF (207, 220, 211
before), files 2.8, 4.5 and 3.6 % above the smallest passing quality (8.9, 4.4 and 11.1
before); on the photos alone at targets 70, 75, 80, 2.0 probes per picture for JPEG, 1.7
for WebP, 1.9 for AVIF (2.3, 1.7, 2.1 before); at targets 50, 85, 88, 92, 95 (not tuned
on) 165, 165 and 164 probes (187, 182, 226 before). JPEG's NEAR since (benchmarks/
search_curves.py, curves recorded again with the lean bounds the search decides by): 155
probes at the tuned targets (175 before), 3.2 % above the smallest (3.0 %), 1.7 probes per
photo at 70-80 (2.0), 147 at the others (150); 4 points where probes measured a flat
curve (``NEAR_FLAT``: 161 probes, 3.1 %; of the screenshots at targets 50-90, one file
kept over 1.15x the smallest passing, 1.17x, where 6 were, up to 1.27x). At most
``MAX_PROBES``; scores by ``imaging.ssimulacra2``, on the pictures as a viewer sees them
(``Seen``).

Touches no files; the caller gives a function that encodes at a quality.
"""

from __future__ import annotations

import io
import logging
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from PIL import Image, ImageSequence

from amberpicd.imaging.ssimulacra2 import Reference

log = logging.getLogger(__name__)

MAX_PROBES = 6
HARD_LIMIT = 10  # while no probe passes yet
TOLERANCE = 2  # stop when the passing and failing qualities are this close
# Or stop when a passing probe scores this close above the target (near-minimal), per
# format: WebP's bytes grow faster per point than JPEG's (chosen by simulation, as _STEER).
# JPEG's 6 (4 before): 155 probes instead of 175 on the recorded curves below, files 3.2 %
# above the smallest passing quality instead of 3.0 % (a pass 4-6 points above the target
# is rarely worth the probes going down costs: flower.jpg at 75, 3 % for 2 more).
NEAR = {"jpeg": 6.0, "webp": 3.0, "avif": 4.0}
# ...but 4 past the jump: 4:4:4 bytes grow faster a point, and one probe there cannot tell
# a flat curve (grayscale, 0.5 a step) whose q89 passes (test_quality_search_hostile).
NEAR_ABOVE_JUMP = {"jpeg": 4.0}
# ...and those 6 points are ~10 steps at the typical slope: where the last two probes
# measured a flatter curve, the points those steps are worth, down to this (screenshots
# gain 0.2-0.35 a step: 6 points kept files 17-30 steps above the smallest pass, test-card
# .png at 65 1.27x its bytes, itxt_chunks.png at 80 1.15x; test_quality_search_hostile).
NEAR_FLAT = {"jpeg": 4.0}
# (target, quality) points per format: where photos typically reach the score (the median
# over the 9 photos of benchmarks/compress.py at 1024 px, 2026-12-01; AVIF at speed 6).
# JPEG at 90: q89 (median q90), the last quality before the 4:4:4 jump, which tells which
# side of it the answer lies: half the photos need q90-95, the others q74-89.
_PRIORS: dict[str, tuple[tuple[float, int], ...]] = {
    "jpeg": ((50, 25), (60, 40), (70, 58), (75, 65), (80, 73), (85, 78), (90, 89), (95, 97)),
    "webp": ((50, 20), (60, 45), (70, 72), (75, 80), (80, 85), (85, 90), (90, 96), (95, 99)),
    "avif": ((50, 36), (60, 45), (70, 55), (75, 60), (80, 67), (85, 83), (90, 91), (95, 100)),
}
# Per format: score points per quality step near the targets (typical), and how far above
# the target a probe aims (chosen by simulating the search on the measured score curves).
_STEER = {"jpeg": (0.6, 1.0), "webp": (0.8, 0.5), "avif": (0.7, 0.5)}
# The typical slope above the ``jump`` (4:4:4), where it differs: JPEG photos gain ~1 point
# a step from q90 (0.6 below), so steps sized for 4:2:0 overshot by 3-5 qualities at 90.
_SLOPE_ABOVE_JUMP = {"jpeg": 1.0}


@dataclass(frozen=True)
class Found:
    data: bytes
    quality: int
    score: float
    probes: int


def prior(fmt: str, target: float) -> int:
    """The quality photos typically need in ``fmt`` to score ``target``."""
    points = _PRIORS[fmt]
    targets = [t for t, _ in points]
    i = bisect_left(targets, target)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (t0, q0), (t1, q1) = points[i - 1], points[i]
    return round(q0 + (q1 - q0) * (target - t0) / (t1 - t0))


def decoded(data: bytes) -> Image.Image:
    """An encode's pixels, its alpha kept (``Seen`` composites it)."""
    im = Image.open(io.BytesIO(data))
    im.load()  # the picture itself where its mode serves: a convert would copy it
    mode = "RGBA" if im.has_transparency_data else "RGB"
    return im if im.mode == mode else im.convert(mode)


def decoded_frames(data: bytes) -> list[Image.Image]:
    """An animation's frames, as ``decoded``."""
    with Image.open(io.BytesIO(data)) as im:
        return [f.convert("RGBA" if f.has_transparency_data else "RGB") for f in
                ImageSequence.Iterator(im)]  # fmt: skip


_MIN_SIDE = 8  # the metric's smallest scale: below it, it measures nothing (scores 100)
_BACKGROUNDS = (26, 230)  # 0.1 and 0.9 grey, the worse score kept: libjxl's ssimulacra2 tool
# An animation's frames scored: as many as fit this many pixels (a reference takes ~64 bytes
# a pixel), at least 2, spread evenly from the first to the last.
_FRAME_PIXELS = 4_000_000


class Seen:
    """SSIMULACRA2 against a reference, both as a viewer sees them. The published metric
    drops alpha (an AVIF whose alpha-drawn text was ruined scored 93), so a picture with
    any transparency is scored over a dark and a light background (composited in sRGB, as
    browsers do) and the worse kept, as libjxl's ssimulacra2 tool does. A side under 8 px
    fits no scale (any encode scored 100, so quality 1 was kept): it is repeated (nearest
    neighbour) up to 8 px. An animation scores its worst frame (of those ``_spread``
    picks: a flat first frame alone scored 100 at quality 1)."""

    def __init__(
        self, frames: Image.Image | list[Image.Image], durations: list[int] | None = None
    ) -> None:
        frames = frames if isinstance(frames, list) else [frames]
        self._count = len(frames)
        self._picks = _spread(len(frames), frames[0].width * frames[0].height)
        starts = _starts(durations or [0] * len(frames))
        self._times = [starts[i] for i in self._picks]
        alpha = any(_transparent(frames[i]) for i in self._picks)
        self._backgrounds = _BACKGROUNDS if alpha else (None,)
        self._refs = [[Reference(_shown(frames[i], bg), lean=True) for bg in self._backgrounds]
                      for i in self._picks]  # fmt: skip

    def score(
        self, distorted: Image.Image | list[Image.Image], target: float | None = None
    ) -> float:
        """The score of ``distorted`` (same size and frames; alpha composited like the
        reference's): a lower bound of it, exact where the bound cannot tell whether it
        reaches ``target`` (lean references, ``imaging.ssimulacra2``)."""
        shown = distorted if isinstance(distorted, list) else [distorted]
        if len(shown) == self._count:
            frames = [shown[i] for i in self._picks]
        else:  # the encoder merged repeated frames: the frame shown at each one's time
            starts = _starts([f.info.get("duration", 0) for f in shown])
            frames = [shown[bisect_right(starts, t) - 1] for t in self._times]
        return min(
            r.score(_shown(frame, bg), target)
            for frame, refs in zip(frames, self._refs, strict=True)
            for r, bg in zip(refs, self._backgrounds, strict=True)
        )


def reported(score: float, target: float) -> float:
    """``score`` to two decimals for users and for ``format: auto``'s comparison with
    ``target`` (compress._smallest): rounded down, so it stays a lower bound of the
    published score, and never across the target (round() made 79.996 a pass of 80)."""
    shown = min(math.floor(score * 100) / 100, score)  # min: float error in the floor
    return max(shown, target) if score >= target else shown


def _starts(durations: list[int]) -> list[int]:
    return [0, *accumulate(durations[:-1])]


def _spread(count: int, pixels: int) -> list[int]:
    n = min(count, max(2, _FRAME_PIXELS // max(pixels, 1)))
    return sorted({round(k * (count - 1) / max(n - 1, 1)) for k in range(n)})


def _transparent(im: Image.Image) -> bool:
    return im.has_transparency_data and im.convert("RGBA").getextrema()[3][0] < 255


def _shown(im: Image.Image, background: int | None) -> Image.Image:
    if background is None:
        im = im if im.mode == "RGB" else im.convert("RGB")
    else:
        under = Image.new("RGBA", im.size, (background,) * 3 + (255,))
        im = Image.alpha_composite(under, im.convert("RGBA")).convert("RGB")
    w, h = im.size
    if min(w, h) >= _MIN_SIDE:
        return im
    return im.resize((w * math.ceil(_MIN_SIDE / min(w, _MIN_SIDE)),
                      h * math.ceil(_MIN_SIDE / min(h, _MIN_SIDE))), Image.NEAREST)  # fmt: skip


def search(
    at: Callable[[int], bytes],
    reference: Reference | Seen,
    fmt: str,
    target: float,
    top: int = 100,
    decode: Callable[[bytes], Image.Image | list[Image.Image]] = decoded,
    jump: int | None = None,
) -> Found:
    """The smallest encode (by quality, 1..``top``) scoring at least ``target``; if none
    does, the best-scoring one probed (the caller reports the score reached). ``jump``:
    the quality from which the encoder's settings change (JPEG and AVIF: 4:4:4 chroma),
    where score and size leap up (q89 to q90, JPEG photos: 1-13 points, 1.15-1.6x the
    bytes; AVIF: 0-13 points, 1.07-1.3x)."""
    tried: dict[int, tuple[bytes, float]] = {}

    def probe(q: int) -> float:
        data = at(q)
        # AVIF maps qualities to 64 quantizers (q88 and q89 encode alike): a file already
        # scored is not compared again.
        twin = next((s for d, s in tried.values() if d == data), None)
        tried[q] = (data, reference.score(decode(data), target) if twin is None else twin)
        log.debug("%s q%d: %d bytes, score %.2f", fmt, q, len(data), tried[q][1])
        return tried[q][1]

    b = _Bracket(top, jump)
    q = min(max(prior(fmt, target), 1), top)
    # A search without a pass yet goes on past MAX_PROBES (to HARD_LIMIT): an output
    # below the target is worse than a few more encodes on a picture far from the prior.
    while len(tried) < (MAX_PROBES if b.high <= top else HARD_LIMIT):
        s = probe(q)
        b.update(q, s, s >= target)
        if b.done(fmt, target):
            break
        q = _next(fmt, target, b, q, s)
        if b.high > top and len(tried) == HARD_LIMIT - 1:
            q = top  # the last encode without a pass: the quality likeliest to pass
        if q in tried:
            break
    passing = [q for q, (_, s) in tried.items() if s >= target]
    best = min(passing) if passing else max(tried, key=lambda q: (tried[q][1], -q))
    data, s = tried[best]
    return Found(data, best, s, len(tried))


class _Bracket:
    """The search's state: ``low`` fails (or is below the scale), ``high`` passes (or is
    above it), with their scores and Illinois weights (an end kept while the other moved
    twice in a row counts half as much each time: plain interpolation on a convex curve
    kept landing on the failing side, the passing end never moved, 6 probes on a photo)."""

    def __init__(self, top: int, jump: int | None) -> None:
        self.top, self.jump = top, jump
        self.low, self.high = 0, top + 1
        self.score_low: float | None = None
        self.score_high: float | None = None
        self.weight_low = self.weight_high = 1.0
        self._moved: bool | None = None  # which end the last probe moved (True: high)
        self.probes: list[tuple[int, float]] = []

    def update(self, q: int, score: float, passed: bool) -> None:
        if passed:
            self.high, self.score_high, self.weight_high = q, score, 1.0
            if self._moved is True:
                self.weight_low /= 2
        else:
            self.low, self.score_low, self.weight_low = q, score, 1.0
            if self._moved is False:
                self.weight_high /= 2
        self._moved = passed
        self.probes.append((q, score))

    def straddles(self, fmt: str, target: float) -> bool:
        """The bracket holds the jump, and the cheaper side of it is not yet ruled out: by
        a miss there, or (all probes passing) by the jump itself likely missing, stepped
        down from the smallest pass at the slope above it (JPEG at target 95: q89 never
        passed, a probe of it cost every photo one more), or the flatter one the probes
        measured (AVIF screenshots at 95: q100 and q94 passed at 0.5 a step, and q94 was
        kept at 1.3 and 1.5x the smallest passing file where q89, 1.2 and 1.4x, passed)."""
        j = self.jump
        if j is None or not (self.low < j - 1 and j <= self.high <= self.top):
            return False
        if self.score_low is not None or self.score_high is None:
            return True
        slope = _measured(self, _SLOPE_ABOVE_JUMP.get(fmt, _STEER[fmt][0]))
        return self.score_high - slope * (self.high - j) >= target

    def done(self, fmt: str, target: float) -> bool:
        if self.low == self.top:
            return True
        if self.straddles(fmt, target):
            return False  # a pass below the jump is far smaller: look there first
        if self.high <= self.top and self.high - self.low <= TOLERANCE:
            return True
        return self.near(fmt, target)

    def near(self, fmt: str, target: float) -> bool:
        """The smallest pass so far scores within NEAR of the target (``NEAR_ABOVE_JUMP``
        where that pass is past the jump; scaled down to ``NEAR_FLAT`` by a flatter slope
        than the typical one measured below it)."""
        if self.score_high is None:
            return False
        if self.jump is not None and self.high >= self.jump:
            return self.score_high - target <= NEAR_ABOVE_JUMP.get(fmt, NEAR[fmt])
        typical = _STEER[fmt][0]
        flat = NEAR[fmt] * _measured(self, typical) / typical
        return self.score_high - target <= max(flat, NEAR_FLAT.get(fmt, NEAR[fmt]))


def _next(fmt: str, target: float, b: _Bracket, last: int, last_score: float) -> int:
    """The next quality to probe, strictly inside (low, high)."""
    slope, margin = _STEER[fmt]
    aim = target + margin
    low, high, top, jump = b.low, b.high, b.top, b.jump
    straddling = b.straddles(fmt, target)
    if straddling and b.score_low is None and b.near(fmt, target):
        q = jump - 1  # near enough above the jump: only the side below could be smaller
    elif straddling and b.score_low is not None:
        # Scores leap at the jump: interpolating across it lands far too low. Step from
        # the failing end along its own side; past the jump, the jump itself (its
        # cheapest quality), or just below it when that already passed.
        q = math.ceil(low + (aim - b.score_low) / slope)
        if q >= jump:
            q = jump if high > jump else jump - 1
    elif b.score_low is not None and b.score_high is not None:
        # Interpolate between the bracket's ends (Illinois-weighted), rounded up (a pass
        # ends the search sooner and is what is kept), kept strictly inside the bracket.
        miss_low = (b.score_low - aim) * b.weight_low
        miss_high = (b.score_high - aim) * b.weight_high
        guess = low + (high - low) * -miss_low / max(miss_high - miss_low, 1e-6)
        q = math.ceil(guess)
    else:
        # One side only: step by the predicted miss (a typical slope, or the flatter
        # one the last two probes measured), at least 1.
        if jump is not None and last >= jump:
            slope = _SLOPE_ABOVE_JUMP.get(fmt, slope)
        step = (aim - last_score) / _measured(b, slope)
        step = math.copysign(max(abs(step), 1), step)
        q = math.ceil(last + step) if step > 0 else round(last + step)
        if jump is not None and step > 0 and last < jump <= q:
            q = jump  # the leap there may be all that is missing
    lo_bound, hi_bound = max(low, 0) + 1, min(high, top + 1) - 1
    return min(max(q, lo_bound), hi_bound)


_FLATTEST = 0.4  # a measured slope is trusted down to this fraction of the typical one


def _measured(b: _Bracket, typical: float) -> float:
    """The slope between the last two probes (all on one side), within
    [``_FLATTEST`` x, 1 x] ``typical``: a picture that gains less per step than the typical
    one takes longer steps (WebP screenshots walked down from q80 in six steps of ~15);
    a steeper one keeps the typical (its step is an overshoot the bracket then corrects).
    Not across the ``jump``."""
    if len(b.probes) < 2:
        return typical
    (q0, s0), (q1, s1) = b.probes[-2:]
    if b.jump is not None and (q0 >= b.jump) != (q1 >= b.jump):
        return typical
    return min(max((s1 - s0) / (q1 - q0), typical * _FLATTEST), typical)
