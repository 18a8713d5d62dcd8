"""Lean references (what ``quality: auto`` scores with): they skip the maps of negligible
weight and must bound the published score from below, tightly, whatever the pictures;
where the bound cannot decide a target they give the published score itself."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from amberpicd.imaging import ssimulacra2, xyb
from amberpicd.imaging.encode import encode_as
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode

PHOTOS = ("flower.jpg", "sugarshack.mpo", "hopper.pcd", "test-card.png", "iptc.jpg")
CODECS = (("JPEG", 25), ("JPEG", 60), ("JPEG", 90), ("WEBP", 50), ("AVIF", 35))


def _roundtrip(im: Image.Image, fmt: str, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, fmt, quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _photo(pillow_images: Path, name: str, size: tuple[int, int] | None = None) -> Image.Image:
    with Image.open(pillow_images / name) as src:
        im = src.convert("RGB")
    return im.resize(size, Image.LANCZOS) if size else im


@pytest.mark.parametrize("size", [None, (200, 150), (40, 300), (9, 9)])
@pytest.mark.parametrize("name", PHOTOS)
def test_lean_bounds_hold_the_published_score(pillow_images: Path, name: str, size):
    """low <= published <= high, and the bounds are tight (a fraction of a point) where
    targets live; sizes with fewer than six scales read other weights, so other maps."""
    im = _photo(pillow_images, name, size)
    exact, lean = ssimulacra2.Reference(im), ssimulacra2.Reference(im, lean=True)
    for fmt, quality in CODECS:
        dist = _roundtrip(im, fmt, quality)
        published = exact.score(dist)
        low, high = lean.bounds(dist)
        assert low <= published <= high + 1e-6, (fmt, quality, low, published, high)
        if 40 <= published <= 95:  # the slack's share grows towards 100: 0.12 at 75
            width = 0.15 if published <= 80 else 0.35
            assert published - low <= high - low <= width, (fmt, quality, low, high)
        assert lean.score(dist) == low  # without a target: the bound


def test_without_the_slack_the_lean_sum_would_overstate_scores(
    pillow_images: Path, monkeypatch: pytest.MonkeyPatch
):
    """Control for the bound: the skipped maps are not zero, so dropping them without the
    slack scores above the published score (what the slack is there to prevent)."""
    im = _photo(pillow_images, "sugarshack.mpo")
    dist = _roundtrip(im, "JPEG", 40)
    published = ssimulacra2.Reference(im).score(dist)
    monkeypatch.setattr(ssimulacra2, "_LEAN_SLACK", [0.0] * (ssimulacra2.SCALES + 1))
    assert ssimulacra2.Reference(im, lean=True).score(dist) > published


def test_the_lean_reference_skips_work(pillow_images: Path):
    """Lean skips three of the five full-size blurs: the X and B planes at full size."""
    im = _photo(pillow_images, "flower.jpg")
    lean = ssimulacra2.Reference(im, lean=True)
    assert [p is None for p in lean._scales[0]] == [True, False, True]
    assert all(p is not None for p in ssimulacra2.Reference(im)._scales[0])
    assert 0.01 < ssimulacra2._LEAN_SLACK[6] < 0.02


def test_a_target_the_bounds_cannot_decide_gets_the_published_score(pillow_images: Path):
    """One pixel one level off: the lower bound is below 99 (the slack), the published
    score 99.75. A target of 99.5 needs the published score, and gets it. (Identical
    pixels are seen as such: exactly 100 without the published score's cost.)"""
    im = _photo(pillow_images, "flower.jpg", (160, 120))
    lean = ssimulacra2.Reference(im, lean=True)
    near = im.copy()
    r, g, b = near.getpixel((80, 60))
    near.putpixel((80, 60), (r + 1 if r < 255 else r - 1, g, b))
    published = ssimulacra2.Reference(im).score(near)
    assert lean.score(near) < 99.5 <= published  # control: the bound alone would miss it
    assert lean.score(near, 99.5) == published
    assert lean.bounds(im.copy()) == (100.0, 100.0)
    # A target the bound decides either way never prepares the exact reference (one that
    # needed it becomes exact: no slack, no longer lean).
    other = ssimulacra2.Reference(im, lean=True)
    dist = _roundtrip(im, "JPEG", 30)
    assert other.score(dist, 30.0) >= 30.0 and other.score(dist, 99.0) < 99.0
    assert other._slack > 0 and other._lean
    assert lean._slack == 0 and not lean._lean


def test_the_fit_is_increasing_in_the_sum():
    """The bound needs the cubic fit to turn a larger weighted sum into a lower score."""
    zeros = [[[0.0] * 6 for _ in range(3)]]
    scores = [ssimulacra2._combine(zeros, t) for t in np.linspace(0.0, 500.0, 20001)]
    assert all(a > b for a, b in itertools.pairwise(scores))


def test_xyb_planes_stay_within_the_bound_the_slack_assumes():
    """Ringing <= |x - mu| <= the largest XYB value, taken as 1 (blurring < 1/2): every
    colour of a 129-level grid of the RGB cube (linear) maps into [0, 0.95]."""
    g = np.linspace(0.0, 1.0, 129, dtype=np.float32)
    cube = np.stack(np.meshgrid(g, g, g, indexing="ij")).reshape(3, 1, -1)
    planes = xyb.xyb(cube)
    for p in planes:
        assert p is not None and float(p.min()) >= 0.0 and float(p.max()) <= 0.95


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    w=st.integers(8, 70),
    h=st.integers(8, 70),
    kind=st.sampled_from(["noise", "binary", "inverse", "shift"]),
)
def test_every_map_stays_under_its_bound(seed: int, w: int, h: int, kind: str):
    """The slack takes 1 - SSIM <= 2, ringing <= 1, blurring <= 1/2 for any pictures:
    hostile pairs (noise, black and white dots, a picture against its inverse, shifted
    copies) never exceed them in any map's norms, at any scale."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "binary":
        a = (a > 127).astype(np.uint8) * 255
    b = {
        "noise": lambda: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "binary": lambda: (rng.random((h, w, 3)) > 0.5).astype(np.uint8) * 255,
        "inverse": lambda: 255 - a,
        "shift": lambda: np.roll(a, 3, axis=1),
    }[kind]()
    ref = ssimulacra2.Reference(Image.fromarray(a))
    lin = xyb.linear(Image.fromarray(b))
    for scale, planes in enumerate(ref._scales):
        lin = lin if scale == 0 else xyb.halve(lin)
        norms = ssimulacra2._scale_norms(planes, lin, ref._needed[scale])
        for channel in norms:
            for k, bound in enumerate(ssimulacra2._MAP_MAX):
                assert channel[2 * k] <= bound and channel[2 * k + 1] <= bound


@pytest.mark.parametrize("target", [70.0, 80.0])
@pytest.mark.parametrize("name", ["fujifilm.mpo", "hopper.pcd", "test-card.png"])
def test_quality_auto_outputs_reach_the_target_by_the_published_score(
    pillow_images: Path, name: str, target: float
):
    """What the lean search keeps scores at least the target by the exact metric, and the
    score reported is a true lower bound of it."""
    im = _photo(pillow_images, name)
    im.thumbnail((640, 640))
    for fmt in ("jpeg", "webp"):
        spec = Encode(format=fmt, quality="auto", target=target)
        out = encode_as(Picture([im]), spec, fmt, (), Path(name))
        with Image.open(io.BytesIO(out.data)) as got:
            published = ssimulacra2.Reference(im).score(got.convert("RGB"))
        assert published >= target, (fmt, out.quality, published)
        assert out.score is not None and out.score <= published + 0.01
