"""``quality: auto``: the lowest quality whose encode scores at least a SSIMULACRA2 target.

A bracketed search over the format's quality scale: the first probe is predicted from
the target (a table per format, measured on photos), the next ones from the misses (a
typical slope per format while only one side of the bracket is known, then interpolation
between the bracket's ends), each aiming a little above the target (``_STEER``) so that
it tends to pass and end the search. It stops when the bracket is ``TOLERANCE`` quality
steps wide or a passing probe lands within ``NEAR`` points of the target. Every probe
costs an encode and a full SSIMULACRA2 comparison, so the steering trades a few percent
of bytes for probes: on the 9 photos of benchmarks/compress.py (targets 70, 75, 80) 2.2
probes per picture for JPEG, 1.7 for WebP (3.4 and 2.4 before), files 3-4 % above the
smallest passing quality. At most ``MAX_PROBES``; scores by ``imaging.ssimulacra2``,
on the pictures as a viewer sees them (``Seen``).

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
NEAR = 3.0  # or when a passing probe scores this close above the target: near-minimal
# (target, quality) points per format: where photos typically reach the score (JPEG and
# WebP: the median over the 9 photos of benchmarks/compress.py at 1024 px, 2026-12-01).
_PRIORS: dict[str, tuple[tuple[float, int], ...]] = {
    "jpeg": ((50, 25), (60, 40), (70, 58), (75, 65), (80, 73), (85, 78), (90, 88), (95, 97)),
    "webp": ((50, 20), (60, 45), (70, 72), (75, 80), (80, 85), (85, 90), (90, 96), (95, 99)),
    "avif": ((50, 25), (60, 38), (70, 52), (75, 60), (80, 68), (85, 77), (90, 86), (95, 94)),
}
# Per format: score points per quality step near the targets (typical), and how far above
# the target a probe aims (chosen by simulating the search on the measured score curves).
_STEER = {"jpeg": (0.6, 1.0), "webp": (0.8, 0.5), "avif": (0.5, 0.5)}


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
) -> Found:
    """The smallest encode (by quality, 1..``top``) scoring at least ``target``; if none
    does, the best-scoring one probed (the caller reports the score reached)."""
    tried: dict[int, tuple[bytes, float]] = {}

    def probe(q: int) -> float:
        data = at(q)
        tried[q] = (data, reference.score(decode(data), target))
        log.debug("%s q%d: %d bytes, score %.2f", fmt, q, len(data), tried[q][1])
        return tried[q][1]

    low, high = 0, top + 1  # low fails (or is below the scale), high passes (or above)
    score_low, score_high = None, None
    q = min(max(prior(fmt, target), 1), top)
    # A search without a pass yet goes on past MAX_PROBES (to HARD_LIMIT): an output
    # below the target is worse than a few more encodes on a picture far from the prior.
    while len(tried) < (MAX_PROBES if high <= top else HARD_LIMIT):
        s = probe(q)
        if s >= target:
            high, score_high = q, s
        else:
            low, score_low = q, s
        if (high <= top and high - low <= TOLERANCE) or low == top:
            break
        if s >= target and s - target <= NEAR:
            break
        q = _next(fmt, target, low, high, score_low, score_high, q, s, top)
        if high > top and len(tried) == HARD_LIMIT - 1:
            q = top  # the last encode without a pass: the quality likeliest to pass
        if q in tried:
            break
    passing = [q for q, (_, s) in tried.items() if s >= target]
    best = min(passing) if passing else max(tried, key=lambda q: (tried[q][1], -q))
    data, s = tried[best]
    return Found(data, best, s, len(tried))


def _next(
    fmt: str,
    target: float,
    low: int,
    high: int,
    score_low: float | None,
    score_high: float | None,
    last: int,
    last_score: float,
    top: int,
) -> int:
    """The next quality to probe, strictly inside (low, high)."""
    slope, margin = _STEER[fmt]
    aim = target + margin
    if score_low is not None and score_high is not None:
        # Interpolate between the bracket's ends, rounded up (a pass ends the search
        # sooner and is what is kept), kept strictly inside the bracket.
        guess = low + (high - low) * (aim - score_low) / max(score_high - score_low, 1e-6)
        q = math.ceil(guess)
    else:
        # One side only: step by the predicted miss (a typical slope), at least 1.
        step = (aim - last_score) / slope
        step = math.copysign(max(abs(step), 1), step)
        q = math.ceil(last + step) if step > 0 else round(last + step)
    lo_bound, hi_bound = max(low, 0) + 1, min(high, top + 1) - 1
    return min(max(q, lo_bound), hi_bound)
