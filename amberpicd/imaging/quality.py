"""``quality: auto``: the lowest quality whose encode scores at least a SSIMULACRA2 target.

A bracketed search over the format's quality scale: the first probe is predicted from
the target (a table per format, measured on photos), the second from the first one's
miss (a typical slope), then the bracket is narrowed by interpolation between its ends
(bisection when that stalls) until it is ``TOLERANCE`` quality steps wide, or a passing
probe lands within ``NEAR`` points of the target. A handful of
encodes at most (``MAX_PROBES``); scores are computed by ``imaging.ssimulacra2``.

Touches no files; the caller gives a function that encodes at a quality.
"""

from __future__ import annotations

import io
import logging
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from amberpicd.imaging.ssimulacra2 import Reference

log = logging.getLogger(__name__)

MAX_PROBES = 6
TOLERANCE = 2  # stop when the passing and failing qualities are this close
NEAR = 1.0  # or when a passing probe scores this close above the target: about minimal
# (target, quality) points per format: where photos typically reach the score (JPEG and
# WebP: the median over the 9 photos of benchmarks/compress.py at 1024 px, 2026-12-01).
_PRIORS: dict[str, tuple[tuple[float, int], ...]] = {
    "jpeg": ((50, 25), (60, 40), (70, 58), (75, 65), (80, 73), (85, 78), (90, 88), (95, 97)),
    "webp": ((50, 20), (60, 45), (70, 72), (75, 80), (80, 85), (85, 90), (90, 96), (95, 99)),
    "avif": ((50, 25), (60, 38), (70, 52), (75, 60), (80, 68), (85, 77), (90, 86), (95, 94)),
}
_SLOPE = {"jpeg": 0.75, "webp": 1.0, "avif": 0.5}  # score points per quality step, typical


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
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def search(
    at: Callable[[int], bytes],
    reference: Reference,
    fmt: str,
    target: float,
    top: int = 100,
) -> Found:
    """The smallest encode (by quality, 1..``top``) scoring at least ``target``; if none
    does, the best-scoring one probed (the caller reports the score reached)."""
    tried: dict[int, tuple[bytes, float]] = {}

    def probe(q: int) -> float:
        data = at(q)
        tried[q] = (data, reference.score(decoded(data)))
        log.debug("%s q%d: %d bytes, score %.2f", fmt, q, len(data), tried[q][1])
        return tried[q][1]

    low, high = 0, top + 1  # low fails (or is below the scale), high passes (or above)
    score_low, score_high = None, None
    q = min(max(prior(fmt, target), 1), top)
    while len(tried) < MAX_PROBES:
        s = probe(q)
        if s >= target:
            high, score_high = q, s
        else:
            low, score_low = q, s
        if high - low <= TOLERANCE or (high == top + 1 and low == top):
            break
        if s >= target and s - target <= NEAR:
            break
        q = _next(fmt, target, low, high, score_low, score_high, q, s, top)
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
    if score_low is not None and score_high is not None:
        # Interpolate between the bracket's ends, leaning up (a pass ends the search
        # sooner and is what is kept); bisect if that lands on an end.
        guess = low + (high - low) * (target - score_low) / max(score_high - score_low, 1e-6)
        q = int(guess) + 1
    else:
        # One side only: step by the predicted miss (a typical slope), at least 3.
        step = (target - last_score) / _SLOPE[fmt]
        step = max(abs(step), 3) * (1 if step > 0 else -1)
        q = round(last + step)
    lo_bound, hi_bound = max(low, 0) + 1, min(high, top + 1) - 1
    if not lo_bound <= q <= hi_bound or q in (low, high):
        q = (max(low, 0) + min(high, top + 1)) // 2
    return min(max(q, lo_bound), hi_bound)
