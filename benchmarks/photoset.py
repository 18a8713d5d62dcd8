"""The photos and screenshot-like pictures the compression benchmarks use (Pillow's own test
images, fitted as the issue measured them) and the *safe* fixed quality per format: shared
by benchmarks/compress.py, process_ratio.py and jpeg_encoders.py. Reads only."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from amberpicd.imaging.encode import encode_as
from amberpicd.imaging.picture import Picture
from amberpicd.imaging.ssimulacra2 import Reference
from amberpicd.ops.encode import Encode

PHOTOS = (
    "flower.jpg", "sugarshack.mpo", "frozenpond.mpo", "fujifilm.mpo", "iptc.jpg",
    "exif_gps_typeerror.jpg", "xmp_test.jpg", "hopper.pcd", "balloon.jpf",
)  # fmt: skip
SCREENS = (
    "test-card.png", "test_anchor_multiline_mm_center.png", "imagedraw_ellipse_various_sizes.png",
    "test_combine_caron.png", "chromacheck-sbix.png", "itxt_chunks.png",
)  # fmt: skip
LOSSY = ("jpeg", "webp", "avif")
GRID = {f: list(range(30, 101, 5)) for f in LOSSY}


def load(images: Path, name: str, max_side: int) -> Image.Image:
    with Image.open(images / name) as im:
        im = im.convert("RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im


def fixed(im: Image.Image, fmt: str, q: int) -> bytes:
    return encode_as(Picture([im]), Encode(format=fmt, quality=q), fmt, (), Path("x")).data


def decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def safe_qualities(
    photos: dict[str, Image.Image], targets: list[float], formats=LOSSY
) -> dict[tuple[str, float], int]:
    """Per format and target: the lowest grid quality keeping every photo >= target (by
    our metric, checked by the judge in compress.py's table)."""
    safe: dict[tuple[str, float], int] = {}
    for fmt in formats:
        worst = {}
        for q in GRID[fmt]:
            worst[q] = min(
                Reference(im).score(decode_rgb(fixed(im, fmt, q))) for im in photos.values()
            )
        for t in targets:
            ok = [q for q in GRID[fmt] if worst[q] >= t]
            safe[(fmt, t)] = min(ok) if ok else 100
    return safe
