"""The quality search's steps, on score curves shaped like the measured ones: a convex
curve (regula falsi stagnates on it), JPEG's leap at the 4:4:4 switch, a flat curve far
from the prior. Each test once failed on the search before it (see its comment)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from curves import search
from PIL import Image

from amberpicd.imaging import quality as search_mod
from amberpicd.imaging.encode import FULL_CHROMA_QUALITY, encode_as
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode


def run(
    curve: Callable[[int], float], fmt: str, target: float, jump: int | None = None
) -> tuple[search_mod.Found, list[int], list[int]]:
    """The search on ``curve``: what it kept, the qualities it probed, and the passing ones."""
    found, calls, _ = search(curve, fmt, target, jump=jump)
    assert len(set(calls)) == len(calls)  # no quality encoded twice
    return found, calls, [q for q in range(1, 101) if curve(q) >= target]


@pytest.mark.parametrize("knee", [80, 85, 88])
def test_a_convex_curve_does_not_stagnate(knee: int):
    # Flat (0.6 a step) up to a knee, steep (5) after it. Plain regula falsi kept landing
    # on the failing side, the passing end (q92) never moved, and after MAX_PROBES it kept
    # q92 while knee+2 passed (the hopper.pcd case: q91 kept, 6 probes).
    def curve(q: int) -> float:
        return 60 + 0.6 * (min(q, knee) - 65) + 5 * max(q - knee, 0)

    found, calls, passing = run(curve, "jpeg", 75)
    assert found.score >= 75 and len(calls) <= search_mod.MAX_PROBES
    assert found.quality - min(passing) <= search_mod.TOLERANCE, calls


def jpeg_like(at_89: float, leap: float = 13.0) -> Callable[[int], float]:
    """A JPEG photo's curve: 0.6 a step in 4:2:0, ``leap`` points up at q90 (4:4:4), then
    0.84 a step (hopper.pcd measured 74.5 at q89, 87.8 at q90; xmp_test.jpg 0.84 above)."""

    def curve(q: int) -> float:
        if q < FULL_CHROMA_QUALITY:
            return at_89 - 0.6 * (FULL_CHROMA_QUALITY - 1 - q)
        return at_89 + leap + 0.84 * (q - FULL_CHROMA_QUALITY)

    return curve


@pytest.mark.parametrize("target", [75, 80])
def test_a_target_only_the_leap_reaches_takes_three_probes(target: float):
    # hopper.pcd: q65 fails far below; the 4:2:0 side tops out under the target. The
    # search interpolated across the leap (q80, q84, q86, q87 all failing) and kept q91.
    found, calls, passing = run(jpeg_like(74.5), "jpeg", target, FULL_CHROMA_QUALITY)
    assert found.quality == min(passing) == FULL_CHROMA_QUALITY
    assert len(calls) <= 3, calls


def test_a_pass_above_the_leap_is_kept_only_once_the_quality_below_fails():
    # test-card.png: q88 failed, q90 passed, q89 passed too: the search stopped at the
    # bracket's TOLERANCE (88..90) and kept q90, 1.6x the bytes of q89 (4:4:4 against 4:2:0).
    found, calls, passing = run(jpeg_like(75.2), "jpeg", 75, FULL_CHROMA_QUALITY)
    assert found.quality == min(passing) == FULL_CHROMA_QUALITY - 1, calls


def test_target_90_first_probes_the_last_quality_before_the_leap():
    # sugarshack.mpo, frozenpond.mpo: 89.8 and 90.2 at q89, 95 at q90. The first probe
    # was q88; a pass at q90 then still needed q89 ruled out: 3 probes where 2 decide.
    found, calls, passing = run(jpeg_like(89.8, leap=5.1), "jpeg", 90, FULL_CHROMA_QUALITY)
    assert found.quality == min(passing) == FULL_CHROMA_QUALITY and len(calls) == 2, calls


def test_a_near_pass_far_above_the_leap_ends_the_search():
    # Target 95: the first probe (q97) passes within NEAR and q90 would score ~89, so
    # nothing below the leap can pass. Refusing to stop until a miss below it was known
    # walked down one quality a probe (97, 96, 95, 94, 93, 92) on every photo.
    def curve(q: int) -> float:
        return 88 + 0.6 * (q - 89) if q < FULL_CHROMA_QUALITY else 93 + 0.5 * (q - 90)

    found, calls, _ = run(curve, "jpeg", 95, FULL_CHROMA_QUALITY)
    assert found.score >= 95 and len(calls) <= 2, calls


def test_above_the_leap_steps_follow_its_own_slope():
    # xmp_test.jpg at target 90: q88 83.0, q90 87.8. A 4:2:0 slope (0.6) stepped from q90
    # to q96 (93.0, kept); q93 was the smallest pass (1.37x the bytes kept).
    found, calls, passing = run(jpeg_like(83.6, leap=4.2), "jpeg", 90, FULL_CHROMA_QUALITY)
    assert found.score >= 90 and len(calls) <= 3, calls
    assert found.quality - min(passing) <= search_mod.TOLERANCE, calls


def test_a_flat_curve_far_from_the_prior_takes_long_steps():
    # A WebP screenshot gains 0.2 a step: the typical slope (0.8) walked down from q86 in
    # steps of ~7 and spent 6 probes; the slope the probes measured takes it in 4.
    found, calls, passing = run(lambda q: 70 + 0.2 * q, "webp", 75)
    assert found.score >= 75 and len(calls) <= 4, calls
    assert found.score - 75 <= search_mod.NEAR["webp"] or found.quality - min(passing) <= 2


def test_hopper_reaches_its_target_in_three_probes_through_encode(
    pillow_images: Path, caplog: pytest.LogCaptureFixture
):
    # The real thing: hopper.pcd at 1024 px (benchmarks/compress.py), JPEG target 75, took
    # 6 probes (q65, q91, q80, q84, q86, q87) and kept q91. encode passes the 4:4:4 jump.
    with Image.open(pillow_images / "hopper.pcd") as im:
        im = im.convert("RGB")
    im.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    spec = Encode(format="jpeg", quality="auto", target=75)
    with caplog.at_level(logging.DEBUG, logger="amberpicd.imaging"):
        out = encode_as(Picture([im]), spec, "jpeg", (), Path("hopper.pcd"))
    probed = [r for r in caplog.records if r.name == search_mod.__name__ and " q" in r.message]
    assert out.score is not None and out.score >= 75
    assert len(probed) <= 4, [r.message for r in probed]
    # Minimal: the quality below the one kept was probed and failed.
    below = [r.message for r in probed if r.message.startswith(f"jpeg q{out.quality - 1}:")]
    assert below and float(below[0].rsplit(" ", 1)[1]) < 75, [r.message for r in probed]


def probes_through_encode(
    im: Image.Image, fmt: str, target: float, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The search's probe lines (``avif q45: 1234 bytes, score 63.80``) for one encode."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="amberpicd.imaging"):
        out = encode_as(Picture([im]), Encode(format=fmt, quality="auto", target=target), fmt,
                        (), Path("photo.jpg"))  # fmt: skip
    assert out.score is not None and out.score >= target
    return [r.message for r in caplog.records if r.name == search_mod.__name__]


@pytest.mark.parametrize("name", ["flower.jpg", "sugarshack.mpo"])
def test_avif_starts_where_photos_reach_the_target(
    pillow_images: Path, name: str, caplog: pytest.LogCaptureFixture
):
    # AVIF's first probes were predicted from a table not measured at Pillow's speed 6:
    # at target 60 it started at q38 (photos need q40-51, median 45) and took 3 probes on
    # these; the medians measured on the 9 photos start within NEAR of the target.
    with Image.open(pillow_images / name) as im:
        im = im.convert("RGB")
    probed = probes_through_encode(im, "avif", 60, caplog)
    assert len(probed) == 1, probed
