"""The quality search's cheap JPEG probes (baseline, non-optimised, no metadata) decode to
exactly the pixels of the real encode (progressive, optimised Huffman tables, metadata) at
every quality, across the switch to 4:4:4 chroma, so a score measured on a probe is the
score of the file written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from amberpicd.imaging import encode as encoder
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
