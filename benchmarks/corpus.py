"""A reproducible benchmark corpus: camera-size JPEGs (EXIF orientation, GPS, camera tags),
PNGs with and without alpha, and HEICs, all synthesised from a seed.

Pixels are photo-like on purpose: smooth colour fields, hard-edged shapes and sensor-like
grain, so codecs and resamplers see the entropy of real photographs (a flat gradient would
flatter every encoder). The same seed and options always give the same files; they are
kept under ``benchmarks/out/files`` and reused while their parameters match.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

GPS_IFD, EXIF_IFD = 0x8825, 0x8769
# The stored-pixel transpose for each EXIF orientation (inverse of what a viewer applies).
STORE = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
ORIENTATIONS = (1, 6, 1, 8, 1, 3, 6, 1)  # mostly landscape, portraits as phones store them


@dataclass(frozen=True)
class CorpusSpec:
    jpegs: int = 150
    pngs: int = 0
    heics: int = 0
    jpeg_size: tuple[int, int] = (4000, 3000)  # stored (landscape) size: 12 MP
    png_size: tuple[int, int] = (2560, 1440)
    heic_size: tuple[int, int] = (4032, 3024)
    jpeg_quality: int = 92  # a camera's "fine"
    seed: int = 1

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True) + "v4"
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Item:
    path: Path
    kind: str  # jpeg | png | png-alpha | heic
    orientation: int


def _gauss_lut(sigma: float) -> list[int]:
    """A point() table turning uniform bytes into Gaussian noise of ``sigma`` around 128."""
    dist = NormalDist(0, sigma) if sigma > 0 else None
    return [
        128 if dist is None else max(0, min(255, round(128 + dist.inv_cdf((i + 0.5) / 256))))
        for i in range(256)
    ]


def photo(
    size: tuple[int, int], rng: np.random.Generator, grain: float = 4.0, alpha: bool = False
) -> Image.Image:
    """A photo-like upright image of ``size``: colour fields at three scales, hard-edged
    shapes and strokes drawn at half size and scaled up (a lens's softness), then fine
    texture and per-channel sensor grain of ``grain`` levels."""
    w, h = size
    hw, hh = max(1, w // 2), max(1, h // 2)
    im: Image.Image | None = None
    for cells, weight in ((3, 1.0), (12, 0.35), (60, 0.15)):
        field = rng.integers(0, 256, (cells, max(2, cells * w // h), 3), np.uint8)
        layer = Image.fromarray(field, "RGB").resize((hw, hh), Image.Resampling.BICUBIC)
        im = layer if im is None else Image.blend(im, layer, weight)
    assert im is not None
    draw = ImageDraw.Draw(im)
    scale = min(hw, hh)
    for _ in range(40):
        x, y, r = rng.uniform(0, hw), rng.uniform(0, hh), rng.uniform(0.01, 0.15) * scale
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r * rng.uniform(0.3, 1), x + r, y + r), fill=colour)
        else:
            pts = [(x + rng.uniform(-r, r), y + rng.uniform(-r, r)) for _ in range(5)]
            draw.polygon(pts, fill=colour)
    for _ in range(300):
        x, y = rng.uniform(0, hw), rng.uniform(0, hh)
        dx, dy = rng.normal(0, 0.05 * scale, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line((x, y, x + dx, y + dy), fill=colour, width=int(rng.integers(1, 3)))
    im = im.resize((w, h), Image.Resampling.BICUBIC)
    if grain > 0:
        texture = Image.fromarray(rng.integers(0, 256, (h // 3 or 1, w // 3 or 1), np.uint8))
        texture = texture.resize((w, h), Image.Resampling.BICUBIC).point(_gauss_lut(grain * 1.75))
        noise = Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8), "RGB")
        im = ImageChops.add(im, Image.merge("RGB", [texture] * 3), 1.0, -128)
        im = ImageChops.add(im, noise.point(_gauss_lut(grain) * 3), 1.0, -128)
    if alpha:
        mask = Image.new("L", size, 0)
        box = (w * 0.08, h * 0.08, w * 0.92, h * 0.92)
        ImageDraw.Draw(mask).rounded_rectangle(box, radius=min(w, h) // 8, fill=255)
        im.putalpha(mask.filter(ImageFilter.BoxBlur(max(1, min(w, h) // 200))))
    return im


def camera_exif(orientation: int, index: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "BenchCam"
    exif[0x0110] = "Model 12"
    exif[0x0131] = "BenchCam Firmware 1.0"
    stamp = f"2024:06:{1 + index % 28:02d} 12:{index % 60:02d}:00"
    exif[0x0132] = stamp
    exif.get_ifd(EXIF_IFD).update({0x9003: stamp, 0xA431: f"SN{index:06d}"})
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (48.0, 51.0, 30.0 + index % 30), 3: "E", 4: (2.0, 17.0, 40.0)}
    )
    return exif


def make(spec: CorpusSpec, root: Path, jobs: int = 2) -> list[Item]:
    """The corpus for ``spec``: a folder of hard links to cached files, items in a fixed
    order (kinds interleaved, as a real drop folder mixes them). Files are made on first
    use, in ``jobs`` processes; each depends only on the seed, its kind and its number, so
    corpora with different counts share them."""
    folder = root / f"corpus-{spec.key}"
    manifest = root / f"corpus-{spec.key}.json"
    if manifest.exists():
        rows = json.loads(manifest.read_text())
        return [Item(folder / r["name"], r["kind"], r["orientation"]) for r in rows]
    plan = (
        [("jpeg", i) for i in range(spec.jpegs)]
        + [("png-alpha" if i % 2 else "png", i) for i in range(spec.pngs)]
        + [("heic", i) for i in range(spec.heics)]
    )
    plan.sort(key=lambda p: (p[1] + 0.5) / _count(spec, p[0]))  # spread each kind out
    cache = root / "files"
    cache.mkdir(parents=True, exist_ok=True)
    with get_context("spawn").Pool(jobs) as pool:
        made = []
        for n, row in enumerate(pool.imap(_cached, [(cache, k, i, spec) for k, i in plan])):
            made.append(row)
            print(f"\rcorpus: {n + 1}/{len(plan)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, (path, kind, orientation) in enumerate(made):
        name = f"{n:04d}-{Path(path).name}"
        target = folder / name
        if not target.exists():
            os.link(path, target)
        rows.append({"name": name, "kind": kind, "orientation": orientation})
    manifest.write_text(json.dumps(rows, indent=1))
    return [Item(folder / r["name"], r["kind"], r["orientation"]) for r in rows]


def _count(spec: CorpusSpec, kind: str) -> int:
    if kind == "jpeg":
        return spec.jpegs
    return spec.pngs if kind.startswith("png") else spec.heics


def _cached(args: tuple[Path, str, int, CorpusSpec]) -> tuple[str, str, int]:
    cache, kind, i, spec = args
    orientation = ORIENTATIONS[i % len(ORIENTATIONS)] if kind == "jpeg" else 1
    if kind == "jpeg":
        size, ext = spec.jpeg_size, "jpg"
        params = (spec.jpeg_size, spec.jpeg_quality)
    elif kind.startswith("png"):
        size, ext, params = spec.png_size, "png", (spec.png_size,)
    else:
        size, ext, params = spec.heic_size, "heic", (spec.heic_size,)
    tag = hashlib.sha256(repr((spec.seed, kind, i, params, "v4")).encode()).hexdigest()[:8]
    path = cache / f"{kind}-{i:04d}-{tag}.{ext}"
    if path.exists():
        return str(path), kind, orientation
    rng = np.random.default_rng([spec.seed, i, sum(kind.encode())])
    temp = path.with_suffix(".tmp")
    if kind == "jpeg":
        w, h = size
        upright = photo((h, w) if orientation in (6, 8) else (w, h), rng)
        op = STORE[orientation]
        stored = upright.transpose(op) if op is not None else upright
        exif = camera_exif(orientation, i).tobytes()
        stored.save(temp, "JPEG", quality=spec.jpeg_quality, exif=exif)
    elif kind.startswith("png"):
        # Screenshots and graphics: clean pixels, no sensor grain.
        photo(size, rng, grain=0, alpha=kind == "png-alpha").save(temp, "PNG", compress_level=6)
    else:
        import pillow_heif

        pillow_heif.register_heif_opener()
        # Phones denoise before HEVC: little grain. x265's fastest preset only changes how
        # long making the corpus takes (decoding is what is measured).
        im = photo(size, rng, grain=1.0)
        exif = camera_exif(1, i).tobytes()
        im.save(temp, "HEIF", quality=70, exif=exif, enc_params={"preset": "ultrafast"})
    os.replace(temp, path)
    return str(path), kind, orientation
