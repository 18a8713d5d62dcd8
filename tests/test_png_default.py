"""PNG's default effort is balanced (zlib level 6), not Pillow's maximum: measured in the README
("PNG effort"), 2.2x the CPU on photos and 7x on graphics for 1.5-9 % smaller files."""

from __future__ import annotations

import io
from pathlib import Path

import images
from PIL import Image

from amberpicd.imaging.encode import encode
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode


def png(picture: Picture, **spec: object) -> bytes:
    return encode(picture, Encode(format="png", **spec), ("icc",), Path("src.jpg"))


def test_png_default_is_zlib_level_6_and_effort_10_is_the_maximum() -> None:
    im = images.upright(320, 240)
    picture = Picture(frames=[im])  # type: ignore[arg-type]
    default = png(picture)
    assert default == png(picture, effort=6)
    smallest = png(picture, effort=10)
    assert smallest != default and len(smallest) <= len(default)  # a control: they differ
    # Same pixels, whatever the effort.
    for data in (default, smallest):
        with Image.open(io.BytesIO(data)) as out:
            assert out.convert("RGB").tobytes() == im.convert("RGB").tobytes()
