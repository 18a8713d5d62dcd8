"""JPEG encoders side by side, in one run: bytes at equal SSIMULACRA2, and their time.

    .venv/bin/python benchmarks/jpeg_encoders.py [--targets 70,75,80] [--max-side 1024]

Encoders: libjpeg-turbo (Pillow: optimised Huffman tables, progressive), mozjpeg
(libvips' ``jpegsave``, which pyvips-binary builds with mozjpeg: trellis quantisation,
optimised scans, quant table 3 as Squoosh uses it, overshoot deringing) and jpegli (the
``pyjpegli`` wheel, BSD). Every encoder goes through amberpicd's own encode path
(``encode: {format: jpeg, encoder: ...}``), so the times include what a rule pays.

Per target, each encoder's ``quality: auto`` finds per photo the lowest quality reaching
the target (amberpicd's metric); the table gives the bytes summed over the photos, the
worst score by the PyPI ``ssimulacra2`` judge (not our metric), the encodes' time at the
qualities found and the whole ``quality: auto`` time. A second table times a fixed q82
encode (the default path) at the photos' full size. Corpus: the real photographs among
Pillow's test images (benchmarks/compress.py's ``PHOTOS``), none of them made by us. This
process times as a worker runs (one BLAS thread, memory tuned: benchmarks/as_worker.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import compress  # noqa: E402  (benchmarks/compress.py: corpus, judge, loading)

from amberpicd.imaging.encode import encode_as  # noqa: E402
from amberpicd.imaging.jpeg import available_encoders  # noqa: E402
from amberpicd.imaging.picture import Picture  # noqa: E402
from amberpicd.ops.encode import Encode  # noqa: E402


def _encode(im, encoder: str, quality: int | str, target: float | None = None):
    spec = Encode(format="jpeg", encoder=encoder, quality=quality, target=target)
    return encode_as(Picture([im]), spec, "jpeg", (), Path("x.jpg"))


def _cpu(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def equal_score_table(photos: dict, targets: list[float], encoders: list[str]) -> list[str]:
    rows = [
        "\n### JPEG encoders at equal SSIMULACRA2 (photos, sums over the corpus)\n",
        "| target | encoder | bytes | vs libjpeg | worst judge score | encode s at the "
        "qualities found | `quality: auto` s |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        base = None
        for enc in encoders:
            total, worst, enc_sec, auto_sec = 0, 100.0, 0.0, 0.0
            for im in photos.values():
                res, sec = _cpu(lambda im=im, enc=enc, t=t: _encode(im, enc, "auto", t))
                auto_sec += sec
                _, sec = _cpu(lambda im=im, enc=enc, q=res.quality: _encode(im, enc, q))
                enc_sec += sec
                total += len(res.data)
                worst = min(worst, compress.judged(im, res.data))
            base = base or total
            rows.append(
                f"| {t:g} | {enc} | {total:,} | {total / base:.3f} | {worst:.1f} | "
                f"{enc_sec:.2f} | {auto_sec:.2f} |"
            )
    return rows


def fixed_table(full: dict, encoders: list[str]) -> list[str]:
    mp = sum(im.width * im.height for im in full.values()) / 1e6
    rows = [
        f"\n### Fixed q82, the default path's encode ({len(full)} photos, {mp:.1f} MP in all, "
        "CPU seconds, best of 3)\n",
        "| encoder | bytes | CPU s | vs libjpeg |",
        "|---|---|---|---|",
    ]
    base = None
    for enc in encoders:
        best, total = float("inf"), 0
        for _ in range(3):
            sec, total = 0.0, 0
            for im in full.values():
                res, s = _cpu(lambda im=im, enc=enc: _encode(im, enc, 82))
                sec += s
                total += len(res.data)
            best = min(best, sec)
        base = base or best
        rows.append(f"| {enc} | {total:,} | {best:.2f} | {best / base:.1f}x |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="70,75,80")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "jpeg.md")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    compress.as_worker.tune_memory()  # as in a worker (compress set its BLAS threads)
    images = compress.corpus.pillow_images()
    photos = {n: compress.load(images, n, args.max_side) for n in compress.PHOTOS}
    full = {n: compress.load(images, n, 8192) for n in compress.PHOTOS}
    encoders = [e for e in ("libjpeg", "mozjpeg", "jpegli") if e in available_encoders()]
    lines = [f"Encoders available: {', '.join(encoders)}. {compress.as_worker.describe()}"]
    lines += equal_score_table(photos, targets, encoders)
    lines += fixed_table(full, encoders)
    compress.write_report(args.out, lines)


if __name__ == "__main__":
    main()
