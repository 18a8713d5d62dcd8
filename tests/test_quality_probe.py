"""The quality search's cheap JPEG probes (baseline, non-optimised, no metadata) decode to
exactly the pixels of the real encode (progressive, optimised Huffman tables, metadata) at
every quality, across the switch to 4:4:4 chroma, so a score measured on a probe is the
score of the file written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from curves import search
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from amberpicd.imaging import encode as encoder
from amberpicd.imaging import quality as search_mod
from amberpicd.imaging.encode import FULL_CHROMA_QUALITY, encode_as
from amberpicd.imaging.frames import prepare
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode

SRC = Path("photo.jpg")


def _pixels(data: bytes) -> tuple[str, bytes]:
    with Image.open(io.BytesIO(data)) as im:
        return im.mode, im.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_probe_pixels_are_the_real_encodes_at_every_quality(pillow_images: Path, mode: str):
    with Image.open(pillow_images / "sugarshack.mpo") as src:
        im = src.convert(mode)
    im = im.crop((0, 0, 301, 203))  # odd sizes: partial MCUs at the right and bottom
    spec = Encode(format="jpeg", quality="auto")
    frames, _ = prepare(Picture([im]), spec, False)
    probe = encoder._probe(frames, spec, True)
    assert probe is not None
    opts_real = encoder._options(spec, 80, True)
    assert opts_real["progressive"] and opts_real["optimize"]  # the real one differs
    for q in range(1, 101):
        real = encoder._save(frames, "jpeg", encoder._options(spec, q, True))
        cheap = probe(q)
        assert cheap != real  # different files (entropy coding) ...
        assert _pixels(cheap) == _pixels(real), q  # ... the same pixels
    assert FULL_CHROMA_QUALITY < 100  # the 4:4:4 switch lies inside the range covered


def test_no_probe_where_the_settings_change_pixels():
    frames = [Image.new("RGB", (16, 16))]
    for spec in (
        Encode(format="webp", quality="auto"),
        Encode(format="avif", quality="auto"),
        Encode(format="jpeg", quality="auto", encoder="mozjpeg"),
    ):
        assert encoder._probe(frames, spec, True) is None


def test_quality_auto_writes_the_real_coding(pillow_images: Path):
    with Image.open(pillow_images / "flower.jpg") as src:
        im = src.convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "MAKER-MARKER"
    pic = Picture([im], source_format="jpeg", exif=exif)
    out = encode_as(pic, Encode(format="jpeg", quality="auto", target=75), "jpeg", {"camera"}, SRC)
    assert out is not None and out.quality is not None
    with Image.open(io.BytesIO(out.data)) as written:
        assert written.info.get("progressive")  # the rule's settings, not the probe's
        assert b"MAKER-MARKER" in written.info.get("exif", b"")
    fixed = encode_as(pic, Encode(format="jpeg", quality=out.quality), "jpeg", {"camera"}, SRC)
    assert fixed is not None and fixed.data == out.data  # byte for byte the fixed encode


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(["jpeg", "webp", "avif"]),
    target=st.floats(55, 90),
    slope=st.floats(0.25, 2.0),
    offset=st.floats(-40, 40),
    bump=st.floats(0, 12),
)
@example(fmt="jpeg", target=75, slope=0.6, offset=-14.2, bump=12.5)  # test-card.png: q89 passes
def test_search_returns_a_passing_near_minimal_quality(fmt, target, slope, offset, bump):
    """On any monotone score curve (linear around the prior, a jump at the 4:4:4 switch
    like JPEG's), the search returns a passing quality whenever one exists, within NEAR
    points of the target or TOLERANCE steps of the smallest passing quality (unless it
    spent MAX_PROBES encodes), below the jump when a quality there passes (JPEG, AVIF),
    and never goes past HARD_LIMIT encodes."""
    prior = search_mod.prior(fmt, target)

    def curve(q: int) -> float:
        return target + offset + slope * (q - prior) + (bump if q >= FULL_CHROMA_QUALITY else 0)

    jump = None if fmt == "webp" else FULL_CHROMA_QUALITY  # as encode passes it
    found, calls, _ = search(curve, fmt, target, jump=jump)
    assert len(calls) <= search_mod.HARD_LIMIT and len(set(calls)) == len(calls)
    passing = [q for q in range(1, 101) if curve(q) >= target]
    if not passing:
        assert found.quality == max(calls, key=curve)  # the best it saw, reported as such
        return
    assert found.score >= target and found.quality in passing
    if len(calls) < search_mod.MAX_PROBES:
        assert found.score - target <= search_mod.NEAR[fmt] or (
            found.quality - min(passing) <= search_mod.TOLERANCE
        ), (found, min(passing), calls)
        if jump is not None and min(passing) < jump:  # never the leap's far bigger files
            assert found.quality < jump, (found, min(passing), calls)
