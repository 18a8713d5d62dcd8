"""Compression side by side, in one run: bytes at equal SSIMULACRA2 and the time taken.

    .venv/bin/python benchmarks/compress.py [--targets 70,75,80] [--max-side 1024]

Corpus (none of it made by us): the real photographs and the rendered, screenshot-like
pictures among Pillow's own test images (the sdist for the installed Pillow, fetched once
by tests/corpus.py). Photos are fitted into ``--max-side`` px as the issue measured them.

Compared, per target: amberpicd ``quality: auto`` (JPEG, WebP, AVIF) and ``format: auto``
against the one *safe* fixed quality per format (the lowest on a grid that keeps every
photo at or above the target), plus peers at their defaults: cjpeg (libjpeg-turbo q75),
mozjpeg (libvips jpegsave with trellis, Squoosh's q75), cwebp (q75), avifenc. Every output
is judged by the PyPI ``ssimulacra2`` package (not our metric). ``quality: auto``'s time over
the fixed quality: the encode step alone (wall and CPU seconds of this process, with the
probes counted) and whole ``amberpicd process`` runs (benchmarks/process_ratio.py: 36 files,
and at target 75 for JPEG and WebP also 144, for the marginal cost of a file).
Lossless: ``optimize`` against ``jpegtran -optimize -progressive``, ``optipng -o2`` and
oxipng, files as shipped. ``--time-only``: the speed tables alone (about 4 minutes before
the marginal runs, which add about 2).

This process times its in-process work as an amberpicd worker runs (benchmarks/as_worker.py):
one BLAS thread (``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS=1``, set before numpy loads,
unless the user set them) and memory tuned for images (``tune_for_images``), for the fixed
and the auto encodes alike; the report's first line says which settings were used. Pictures
and safe qualities: benchmarks/photoset.py.
"""

from __future__ import annotations

import argparse
import atexit
import io
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import as_worker  # benchmarks/: stdlib only until called
from PIL import Image

as_worker.blas_threads()  # before anything below loads numpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402  (tests/corpus.py: Pillow's test images)
import ssimulacra2 as judge  # noqa: E402
from photoset import LOSSY, PHOTOS, SCREENS, fixed, load, safe_qualities  # noqa: E402
from photoset import decode_rgb as _decode  # noqa: E402
from process_ratio import process_run_ratios  # noqa: E402  (benchmarks/)

from amberpicd.imaging.compress import encode_output  # noqa: E402
from amberpicd.imaging.encode import encode_as  # noqa: E402
from amberpicd.imaging.picture import Picture  # noqa: E402
from amberpicd.imaging.ssimulacra2 import Reference  # noqa: E402
from amberpicd.ops.encode import Encode  # noqa: E402
from amberpicd.ops.optimize import Optimize  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="amberpicd-compress-"))
# Removed at exit: every import made one (jpeg_encoders.py imports this), and 185 were left.
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def judged(ref: Image.Image, data: bytes) -> float:
    a, b = TMP / "ref.png", TMP / "out.png"
    ref.save(a)
    with Image.open(io.BytesIO(data)) as out:
        out.convert("RGB").save(b)
    return judge.compute_ssimulacra2(str(a), str(b))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def peers(im: Image.Image) -> dict[str, tuple[bytes, float]]:
    src = TMP / "src.ppm"
    im.save(src)
    png = TMP / "src.png"
    im.save(png)
    out: dict[str, tuple[bytes, float]] = {}
    runs = {
        "cjpeg q75 (turbo)": (["cjpeg", "-quality", "75", "-outfile", "{o}", str(src)], "jpg"),
        "cwebp default": (["cwebp", "-quiet", str(png), "-o", "{o}"], "webp"),
        "avifenc default": (["avifenc", "-j", "2", str(png), "{o}"], "avif"),
    }
    for name, (cmd, ext) in runs.items():
        if shutil.which(cmd[0]) is None:
            continue
        dest = TMP / f"peer.{ext}"
        argv = [c.replace("{o}", str(dest)) for c in cmd]
        _, sec = timed(lambda argv=argv: subprocess.run(argv, check=True, capture_output=True))
        out[name] = (dest.read_bytes(), sec)
    import pyvips

    v = pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, 3, "uchar")
    kw = dict(Q=75, trellis_quant=True, overshoot_deringing=True, optimize_scans=True)
    data, sec = timed(lambda: v.jpegsave_buffer(quant_table=3, keep="none", **kw))
    out["mozjpeg q75 (libvips)"] = (data, sec)
    return out


def lossy_table(kind: str, pics: dict[str, Image.Image], targets, safe) -> list[str]:
    rows = [
        f"\n### {kind}: bytes (sum), worst judge score, time (sum)\n",
        "| target | method | bytes | vs safe fixed | worst score | seconds |",
        "|---|---|---|---|---|---|",
    ]
    fixed_time: dict[str, float] = {}
    for t in targets:
        results: dict[str, list] = {}
        for name, im in pics.items():
            pic = Picture([im])
            for fmt in LOSSY:
                q = safe[(fmt, t)]
                data, sec = timed(lambda im=im, fmt=fmt, q=q: fixed(im, fmt, q))
                results.setdefault(f"{fmt} fixed q{q} (safe)", []).append((data, sec, im))
                spec = Encode(format=fmt, quality="auto", target=t)
                where = Path(name)
                res, sec = timed(
                    lambda pic=pic, spec=spec, fmt=fmt, p=where: encode_as(pic, spec, fmt, (), p)
                )
                results.setdefault(f"{fmt} quality: auto", []).append((res.data, sec, im))
            auto = Encode(format="auto", target=t)
            res, sec = timed(lambda pic=pic, a=auto: encode_output(pic, a, (), Path("x")))
            results.setdefault("format: auto", []).append((res.data, sec, im))
        for method, items in results.items():
            total = sum(len(d) for d, _, _ in items)
            sec = sum(s for _, s, _ in items)
            worst = min(judged(im, d) for d, _, im in items)
            fmt = method.split()[0]
            base = (
                sum(
                    len(d)
                    for d, _, _ in results.get(f"{fmt} fixed q{safe.get((fmt, t), 0)} (safe)", [])
                )
                or None
            )
            if method == "format: auto":
                base = sum(len(d) for d, _, _ in results[f"jpeg fixed q{safe[('jpeg', t)]} (safe)"])
            if "fixed" in method:
                fixed_time[f"{fmt}{t}"] = sec
            ratio = f"{total / base:.2f}" if base else ""
            if method == "format: auto":
                ratio += " (of JPEG)"
            rows.append(f"| {t:g} | {method} | {total:,} | {ratio} | {worst:.1f} | {sec:.2f} |")
        for fmt in LOSSY:
            auto = sum(s for _, s, _ in results[f"{fmt} quality: auto"])
            rows.append(
                f"| {t:g} | {fmt} auto/fixed time | | | | {auto / fixed_time[f'{fmt}{t}']:.1f}x |"
            )
    peer_rows: dict[str, list] = {}
    for im in pics.values():
        for name, (data, sec) in peers(im).items():
            peer_rows.setdefault(name, []).append((data, sec, im))
    for name, items in peer_rows.items():
        total = sum(len(d) for d, _, _ in items)
        scores = [judged(im, d) for d, _, im in items]
        sec = sum(s for _, s, _ in items)
        rows.append(
            f"| peer | {name} | {total:,} | | {min(scores):.1f} "
            f"(median {statistics.median(scores):.1f}) | {sec:.2f} |"
        )
    return rows


def lossless_table(images: Path) -> list[str]:
    rows = [
        "\n### Lossless: files as shipped (bytes sum, seconds sum)\n",
        "| files | method | bytes | vs source | seconds | pixels identical |",
        "|---|---|---|---|---|---|",
    ]
    import oxipng

    groups = {
        "camera JPEGs": [n for n in PHOTOS if n.endswith((".jpg", ".mpo"))],
        "PNGs": list(SCREENS),
    }
    for label, names in groups.items():
        files = [(images / n).read_bytes() for n in names]
        src_total = sum(len(f) for f in files)
        methods = {}
        for data in files:
            fmt = "jpeg" if data[:2] == b"\xff\xd8" else "png"
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                pic = Picture([im.copy()], source_format=fmt, exif=im.getexif())
            res, sec = timed(
                lambda pic=pic, data=data: encode_output(pic, Optimize(), (), Path("x"), data)
            )
            methods.setdefault("amberpicd optimize", []).append((data, res.data, sec))
            src = TMP / f"in.{fmt}"
            src.write_bytes(data)
            if fmt == "jpeg":
                dest = TMP / "out.jpg"
                cmd = [
                    "jpegtran",
                    "-optimize",
                    "-progressive",
                    "-copy",
                    "none",
                    "-outfile",
                    str(dest),
                    str(src),
                ]
                _, sec = timed(lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True))
                methods.setdefault("jpegtran -optimize -progressive", []).append(
                    (data, dest.read_bytes(), sec)
                )
            else:
                dest = TMP / "out.png"
                cmd = [
                    "optipng",
                    "-quiet",
                    "-o2",
                    "-strip",
                    "all",
                    "-out",
                    str(dest),
                    "-clobber",
                    str(src),
                ]
                _, sec = timed(lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True))
                methods.setdefault("optipng -o2", []).append((data, dest.read_bytes(), sec))
                out, sec = timed(
                    lambda data=data: oxipng.optimize_from_memory(
                        data, strip=oxipng.StripChunks.all()
                    )
                )
                methods.setdefault("oxipng (default level)", []).append((data, out, sec))
        for name, items in methods.items():
            total = sum(len(o) for _, o, _ in items)
            same = all(_pixels(s) == _pixels(o) for s, o, _ in items)
            sec = sum(s for _, _, s in items)
            rows.append(
                f"| {label} | {name} | {total:,} | {total / src_total:.3f} | {sec:.2f} | {same} |"
            )
    return rows


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGBA").tobytes()


def both_timed(fn, rounds: int = 1):
    """The best of ``rounds`` runs, in wall seconds and in CPU seconds of this process (the
    metric's helper thread included)."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return out, wall, cpu


def metric_speed(images: Path) -> list[str]:
    im = load(images, "xmp_test.jpg", 4096)  # 2000x1072: 2.1 MP
    data = fixed(im, "avif", 60)
    dist = _decode(data)
    rows = [
        "\n### SSIMULACRA2 speed, 2.1 MP (xmp_test.jpg), best of 3, wall / CPU seconds\n",
        "| reference | preparation | one comparison |",
        "|---|---|---|",
    ]
    for kind, lean in (("published (exact)", False), ("lean (quality: auto)", True)):
        ref, pw, pc = both_timed(lambda lean=lean: Reference(im, lean=lean), 3)
        _, sw, sc = both_timed(lambda ref=ref: ref.score(dist), 3)
        rows.append(f"| {kind} | {pw:.3f} / {pc:.3f} | {sw:.3f} / {sc:.3f} |")
    _, aw, ac = both_timed(lambda: fixed(im, "avif", 60), 2)
    _, jw, jc = both_timed(lambda: fixed(im, "jpeg", 82), 3)
    rows.append(
        f"\nAVIF q60 speed 6 encode {aw:.2f} / {ac:.2f} s; JPEG q82 encode {jw:.3f} / {jc:.3f} s"
    )
    return rows


def auto_time_ratios(photos: dict[str, Image.Image], targets, safe) -> list[str]:
    """``quality: auto`` over the safe fixed quality, per format: the encode step alone, in
    this process (the issue's goal: at most 4x the wall time), each photo's best of 2
    interleaved runs, in wall and CPU seconds, with the probes the searches took."""
    rows = [
        "\n### `quality: auto` time over a fixed encode, the encode step alone (photos)\n",
        "| target | format | fixed wall s | auto wall s | ratio | fixed CPU s | auto CPU s "
        "| ratio | probes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    log = logging.getLogger("amberpicd.imaging.encode")
    for t in targets:
        for fmt in LOSSY:
            total = [0.0] * 4  # fixed wall, fixed CPU, auto wall, auto CPU
            probes = 0
            for name, im in photos.items():
                q = safe[(fmt, t)]
                spec = Encode(format=fmt, quality="auto", target=t)
                pic, where = Picture([im]), Path(name)
                seen: list[str] = []
                handler = _Collect(seen)
                log.addHandler(handler)
                log.setLevel(logging.DEBUG)
                best = [float("inf")] * 4
                try:
                    for _ in range(2):
                        _, w, c = both_timed(lambda im=im, fmt=fmt, q=q: fixed(im, fmt, q))
                        best[0], best[1] = min(best[0], w), min(best[1], c)
                        run = lambda pic=pic, spec=spec, fmt=fmt, w=where: encode_as(  # noqa: E731
                            pic, spec, fmt, (), w
                        )
                        _, w, c = both_timed(run)
                        best[2], best[3] = min(best[2], w), min(best[3], c)
                finally:
                    log.removeHandler(handler)
                total = [a + b for a, b in zip(total, best, strict=True)]
                probes += int(seen[-1].rsplit(", ", 1)[1].split()[0])
            fw, fc, aw, ac = total
            rows.append(
                f"| {t:g} | {fmt} | {fw:.2f} | {aw:.2f} | {aw / fw:.1f}x "
                f"| {fc:.2f} | {ac:.2f} | {ac / fc:.1f}x | {probes} |"
            )
    return rows


class _Collect(logging.Handler):
    """The search's debug lines (``... quality auto: q64, ..., 3 probes``)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if "quality auto" in record.getMessage():
            self.into.append(record.getMessage())


def write_report(out: Path, lines: list[str]) -> None:
    """The report's markdown lines, written to ``out`` and printed."""
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="70,75,80")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "compress.md")
    ap.add_argument("--time-only", action="store_true", help="the speed tables alone")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    as_worker.tune_memory()  # before any timing: fixed and auto alike
    images = corpus.pillow_images()
    photos = {n: load(images, n, args.max_side) for n in PHOTOS}
    screens = {n: load(images, n, 4096) for n in SCREENS}
    lines = [
        f"Corpus: {len(photos)} photos and {len(screens)} screenshot-like pictures "
        f"from Pillow's test images. {as_worker.describe()}"
    ]
    lines += metric_speed(images)
    safe = safe_qualities(photos, targets)
    lines.append(
        "\nSafe fixed qualities (photos): "
        + ", ".join(f"{f}@{t:g}=q{q}" for (f, t), q in safe.items())
    )
    lines += auto_time_ratios(photos, targets, safe)
    lines += process_run_ratios(photos, targets, safe, LOSSY, TMP)
    if 75.0 in targets:  # the Done-when target: what a file costs, where start-up weighs most
        lines += process_run_ratios(photos, [75.0], safe, ("jpeg", "webp"), TMP, copies=(1, 4))
    if args.time_only:
        write_report(args.out, lines)
        return
    lines += lossy_table("Photos", photos, targets, safe)
    lines += lossy_table("Screenshots", screens, targets, safe)
    lines += lossless_table(images)
    write_report(args.out, lines)


if __name__ == "__main__":
    main()
