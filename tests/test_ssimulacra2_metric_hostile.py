"""imaging.ssimulacra2 after the cheaper maps (norms only where weighted, edge ratios as a
product with a reciprocal, blurring as min(r, 0), identical pixels told by comparing them):
the lean slack still accounts for exactly what a lean reference skips, the maps it computes
are the exact reference's, nothing one sample off scores 100, and identical pixels score
100 in any mode, through ``quality.Seen`` (alpha, palettes, frames) and after a fallback
to the published score."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from amberpicd.imaging import quality, ssimulacra2, xyb

S = ssimulacra2


@pytest.mark.parametrize("scales", range(S.SCALES + 1))
def test_every_weighted_norm_is_summed_or_counted_in_the_slack(scales: int):
    """Each of the 108 weights: its norm is summed (its bit set), or its map is skipped
    whole and the most it can add is in ``_LEAN_SLACK``; and what the slack counts is
    exactly the skipped maps (nothing summed is counted twice)."""
    slack = 0.0
    for scale in range(scales):
        exact, lean = S._NEEDED[scales][scale], S._LEAN[scales][scale]
        for c in range(3):
            w = S._weights(c, scale, scales)
            for k in range(3):
                for n, bit in ((0, S._ONE), (1, S._FOUR)):
                    weight = w[3 * n + k]
                    assert bool(exact[c][k] & bit) == (weight > 0), (scale, c, k, n)
                    if lean[c][k]:
                        assert bool(lean[c][k] & bit) == (weight > 0), (scale, c, k, n)
                    else:
                        assert weight <= S._TINY
                        slack += weight * S._MAP_MAX[k]
    assert S._LEAN_SLACK[scales] == pytest.approx(slack, rel=1e-12, abs=0)
    if scales == S.SCALES:
        assert slack > 0.01  # control: the lean reference does skip something


def _norms(ref: S.Reference, distorted: Image.Image) -> list[list[list[float]]]:
    lin, out = xyb.linear(distorted), []
    for scale, planes in enumerate(ref._scales):
        lin = lin if scale == 0 else xyb.halve(lin)
        out.append(S._scale_norms(planes, lin, ref._needed[scale]))
    return out


def _pair(seed: int, w: int, h: int) -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a), Image.fromarray(b)


@pytest.mark.parametrize("size", [(8, 8), (17, 40), (70, 33), (129, 130), (257, 300)])
def test_the_lean_references_maps_are_the_exact_ones(size: tuple[int, int]):
    """Where a lean reference computes a map, its norms are the exact reference's (to
    float32 noise), and every norm it leaves at 0 weighs nothing or is in the slack."""
    im, dist = _pair(sum(size), *size)
    exact, lean = S.Reference(im), S.Reference(im, lean=True)
    scales = len(exact._scales)
    got, want = _norms(lean, dist), _norms(exact, dist)
    for scale in range(scales):
        for c in range(3):
            w = S._weights(c, scale, scales)
            for i in range(6):
                weight = w[3 * (i % 2) + i // 2]
                if lean._needed[scale][c][i // 2]:
                    if weight > 0:
                        assert got[scale][c][i] == pytest.approx(want[scale][c][i], rel=1e-5)
                        assert want[scale][c][i] > 0  # control: a map that measured something
                else:
                    assert got[scale][c][i] == 0.0 and weight <= S._TINY


_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@_SETTINGS
@given(
    w=st.integers(8, 48),
    h=st.integers(8, 48),
    seed=st.integers(0, 2**32 - 1),
    where=st.sampled_from(["corner", "last", "any"]),
    flat=st.booleans(),
)
def test_nothing_one_sample_off_scores_100(w: int, h: int, seed: int, where: str, flat: bool):
    """The smallest change there is (one sample, one level, at a corner, the last row and
    column the halving treats apart, or anywhere, on flat or noisy content) never scores
    100, on exact and lean references and as a viewer sees it."""
    rng = np.random.default_rng(seed)
    a = (np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8) if flat else
         rng.integers(0, 256, (h, w, 3), dtype=np.uint8))  # fmt: skip
    y, x = {"corner": (0, 0), "last": (h - 1, w - 1)}.get(
        where, (int(rng.integers(h)), int(rng.integers(w)))
    )
    c = int(rng.integers(3))
    b = a.copy()
    b[y, x, c] = a[y, x, c] + 1 if a[y, x, c] < 255 else 254
    im, near = Image.fromarray(a), Image.fromarray(b)
    for lean in (False, True):
        low, high = S.Reference(im, lean=lean).bounds(near)
        assert low <= high < 100.0, (lean, low, high)
    assert quality.Seen(im).score(near, 100.0) < 100.0
    assert S.score(im, near) < 100.0
    assert S.Reference(im, lean=True).bounds(im.copy()) == (100.0, 100.0)  # control


def _lossless(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "TIFF" if im.mode == "CMYK" else "PNG")
    return quality.decoded(buf.getvalue())


def _picture(w: int = 61, h: int = 47) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 4 % 256, y * 5 % 256, (x * y) % 256], axis=2).astype(np.uint8)
    return Image.fromarray(a)


def test_identical_pixels_score_100_in_any_mode_through_seen():
    """A lossless output decodes to another mode than its source (RGBA of an opaque
    picture, RGB of a palette or grey one), or to the same pixels under alpha: 100."""
    im = _picture()
    alpha = im.convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize(im.size))
    sources = {
        "RGBA opaque": im.convert("RGBA"),
        "P": im.quantize(64),
        "L": im.convert("L"),
        "RGBA with alpha": alpha,
        "CMYK": im.convert("CMYK"),
    }
    for name, src in sources.items():
        seen = quality.Seen(src)
        out = _lossless(src)
        assert seen.score(out) == 100.0, name
        assert seen.score(out, 100.0) == 100.0, name
        if name == "RGBA with alpha":  # control: alpha changed, as shown over a background
            other = out.copy()
            other.putalpha(255)
            assert seen.score(other) < 90
    frames = [_picture(), _picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT), _picture()]
    seen = quality.Seen(frames, [100, 100, 100])
    assert seen.score([f.copy() for f in frames], 95.0) == 100.0
    changed = [f.copy() for f in frames]
    changed[1].putpixel((3, 3), (0, 0, 0))
    assert seen.score(changed, 95.0) < 100.0  # control: one frame off


def test_a_reference_that_fell_back_to_the_published_score_still_tells_identical_pixels():
    """The fallback swaps the lean planes for exact ones (the reference is no longer lean);
    the pixels it compares are kept: identical still scores 100."""
    im = _picture(160, 120)
    near = im.copy()
    r, g, b = near.getpixel((80, 60))
    near.putpixel((80, 60), (r + 1 if r < 255 else r - 1, g, b))
    ref = S.Reference(im, lean=True)
    published = S.Reference(im).score(near)
    low, high = ref.bounds(near)
    target = (low + published) / 2
    assert low < target <= published < high  # control: the bounds cannot decide it
    assert ref.score(near, target) == published and not ref._lean and ref._slack == 0
    assert ref.score(im.copy(), target) == 100.0
    assert ref.bounds(im.copy()) == (100.0, 100.0) and ref.bounds(near)[0] == published
