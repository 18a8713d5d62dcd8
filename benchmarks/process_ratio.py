"""The user-facing side of benchmarks/compress.py: whole ``amberpicd process`` runs with
``quality: auto`` against the same rule at a fixed quality (wall and CPU seconds of every
process of the run, by ``harness``), and what one more file costs (the marginal cost: two
batch sizes, the difference over the files added), free of what a run pays once (start-up,
each worker's first use of the metric and of each picture size).

    .venv/bin/python benchmarks/process_ratio.py [--formats jpeg] [--targets 75]
        [--copies 1,4] [--rounds 5] [--max-side 1024]

run alone prints the markdown rows, with the photos and safe fixed qualities obtained as
compress.py obtains them (benchmarks/photoset.py). Writes only below a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import as_worker
import harness
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TURNS = {"": None, "-m": Image.Transpose.FLIP_LEFT_RIGHT,
         "-f": Image.Transpose.FLIP_TOP_BOTTOM, "-r": Image.Transpose.ROTATE_180}  # fmt: skip


def write_inbox(photos: dict[str, Image.Image], folder: Path, copies: int) -> int:
    """The photos as PNGs of the fitted pictures (the same pixels the encode-step table
    sees), each also mirrored, flipped and turned, and ``copies - 1`` more of each of those
    with one pixel's red value changed by one (copy k: pixel (k, 0)): every file is content
    of its own, so nothing that recognises content (``duplicates: skip``, the journal's
    content hash) could spare one, and every copy costs what its original costs. Raises if
    two files would hold the same pixels (a symmetric picture). Returns the number of files."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: dict[bytes, str] = {}
    for name, im in photos.items():
        for suffix, turn in TURNS.items():
            base = im if turn is None else im.transpose(turn)
            for k in range(copies):
                pic = base
                if k:
                    pic = base.copy()
                    r, g, b = pic.getpixel((k, 0))
                    pic.putpixel((k, 0), (r ^ 1, g, b))
                file = f"{Path(name).stem}{suffix}{f'-c{k}' if k else ''}.png"
                digest = hashlib.sha256(pic.tobytes()).digest()
                if digest in seen:
                    raise ValueError(f"{file}: the same pixels as {seen[digest]}")
                seen[digest] = file
                pic.save(folder / file)
    return len(seen)


def one_run(inbox: Path, run: Path, fmt: str, quality: int | str, target: float,
            env: dict[str, str], unset: tuple[str, ...]) -> harness.Measured:  # fmt: skip
    """One ``amberpicd process`` run over ``inbox`` (default workers; a fresh journal and
    output folder in ``run``); raises unless it wrote one output per file."""
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    enc: dict[str, object] = {"format": fmt, "quality": quality}
    if quality == "auto":
        enc["target"] = target
    rule = {
        "name": "bench",
        "pipeline": [{"resize": {"width": 4096, "height": 4096}}, {"encode": enc}],
        "keep_metadata": [],
        "output": str(run / "out" / "{stem}.{ext}"),
    }
    config = run / "config.yaml"
    config.write_text(json.dumps({"version": 1, "rules": [rule]}))  # JSON is YAML
    argv = (sys.executable, "-m", "amberpicd", "-c", str(config), "process", str(inbox))
    m = harness.run([harness.Command(argv, {**env, "XDG_STATE_HOME": str(run / "state")}, unset)])
    if m.errors:
        raise RuntimeError("; ".join(m.errors))
    files = sum(1 for _ in inbox.iterdir())
    made = sum(1 for _ in (run / "out").iterdir()) if (run / "out").is_dir() else 0
    if made != files:
        raise RuntimeError(f"{fmt} {quality}: {made} outputs for {files} files in {inbox}")
    return m


def process_run_ratios(
    photos: dict[str, Image.Image],
    targets: Sequence[float],
    safe: dict[tuple[str, float], int],
    formats: Sequence[str],
    tmp: Path,
    rounds: int = 2,
    copies: Sequence[int] = (1,),
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """The user-facing ratio: whole ``amberpicd process`` runs (start-up, decode, encode,
    publish, journal; default workers) over the photos (``write_inbox``: 4 files a photo,
    times each of ``copies``) with ``quality: auto`` against the same rule at the safe fixed
    quality, wall and CPU seconds of every process of the run; every batch size and kind
    interleaved in each round, the best of ``rounds`` kept. With two sizes, also the
    marginal cost of a file, (t_big - t_small) / (n_big - n_small) per kind, and its ratio:
    what a large batch approaches. The runs get this process's environment as a user would
    have it (without the BLAS settings ``as_worker`` made) and a bytecode cache, as installed
    (``harness.bytecode_cache``); one untimed run of each kind first fills it. ``log`` gets a
    line per timed run (the spread behind the bests)."""
    load = os.getloadavg()[0]  # before this part's own work (its runs keep ~2 cores busy)
    sizes = {c: write_inbox(photos, tmp / f"process-in-x{c}", c) for c in copies}
    env = {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    unset = (*as_worker.set_here(), "PYTHONDONTWRITEBYTECODE")
    fmt, t = formats[0], targets[0]
    for quality in (safe[(fmt, t)], "auto"):
        one_run(tmp / f"process-in-x{copies[0]}", tmp / "warm", fmt, quality, t, env, unset)
    body = []
    for t in targets:
        for fmt in formats:
            best: dict[tuple[int, str], tuple[float, float]] = {}
            for _ in range(rounds):
                for c in copies:
                    for kind, quality in (("fixed", safe[(fmt, t)]), ("auto", "auto")):
                        inbox, run = tmp / f"process-in-x{c}", tmp / f"process-{kind}"
                        m = one_run(inbox, run, fmt, quality, t, env, unset)
                        if log is not None:
                            log(f"{fmt}@{t:g} {kind} {sizes[c]} files: {m.seconds:.2f} s wall, "
                                f"{m.cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}")  # fmt: skip
                        old = best.get((c, kind), (1e9, 1e9))
                        best[(c, kind)] = (min(old[0], m.seconds), min(old[1], m.cpu))
            for c in copies:
                (fw, fc), (aw, ac) = best[(c, "fixed")], best[(c, "auto")]
                body.append(_row(t, fmt, str(sizes[c]), (fw, aw, fc, ac), ".2f"))
            if len(copies) > 1:
                body += _marginal_rows(t, fmt, best, sizes, copies[0], copies[-1])
    files = " and ".join(str(sizes[c]) for c in copies)
    more = ""
    if len(copies) > 1:
        n, c = sizes[copies[-1]], copies[-1]
        more = f"; the {n} add {c - 1} copies of each with one pixel changed by one"
    return [
        f"\n### `amberpicd process` over {files} files (the photos, each also mirrored, "
        f"flipped and turned{more}): `quality: auto` against the safe fixed quality (wall and "
        f"CPU s of all processes, best of {rounds} interleaved rounds, bytecode cached; load "
        f"average {load:.1f} before, {os.getloadavg()[0]:.1f} after, its own runs included)\n",
        "| target | format | files | fixed wall | auto wall | ratio | fixed CPU | auto CPU "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|---|",
        *body,
    ]


def _marginal_rows(t: float, fmt: str, best: dict, sizes: dict[int, int], small: int,
                   big: int) -> list[str]:  # fmt: skip
    """What one more file costs, (t_big - t_small) / (n_big - n_small) per kind, wall and CPU,
    and what that leaves for a run of no files (start-up, shut-down: the part both share)."""
    n = sizes[big] - sizes[small]
    keys = [(k, i) for i in (0, 1) for k in ("fixed", "auto")]  # fixed wall, auto wall, CPU...
    per = [(best[(big, k)][i] - best[(small, k)][i]) / n for k, i in keys]
    at_zero = [best[(small, k)][i] - sizes[small] * p for (k, i), p in zip(keys, per, strict=True)]
    return [
        _row(t, fmt, f"per file ({sizes[big]} - {sizes[small]})", per, ".4f"),
        _row(t, fmt, "per run, at 0 files", at_zero, ".2f", ratio=False),
    ]


def _row(t: float, fmt: str, files: str, v: Sequence[float], f: str, ratio: bool = True) -> str:
    fw, aw, fc, ac = v
    rw = f"{aw / fw:.1f}x" if ratio and fw > 0 else ""
    rc = f"{ac / fc:.1f}x" if ratio and fc > 0 else ""
    return f"| {t:g} | {fmt} | {files} | {fw:{f}} | {aw:{f}} | {rw} | {fc:{f}} | {ac:{f}} | {rc} |"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default="jpeg", help="comma-separated: jpeg,webp,avif")
    ap.add_argument("--targets", default="75")
    ap.add_argument(
        "--copies", default="1,4", help="batch sizes: copies of each of the 4 files a photo"
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-side", type=int, default=1024)
    args = ap.parse_args()
    formats = args.formats.split(",")
    targets = [float(t) for t in args.targets.split(",")]
    copies = [int(c) for c in args.copies.split(",")]
    started = f"Load average at the start: {os.getloadavg()[0]:.1f}."
    as_worker.blas_threads()  # the safe qualities are scored as compress.py scores them
    sys.path.insert(0, str(ROOT / "tests"))
    import corpus  # tests/corpus.py: Pillow's test images
    from photoset import PHOTOS, load, safe_qualities

    as_worker.tune_memory()
    images = corpus.pillow_images()
    photos = {n: load(images, n, args.max_side) for n in PHOTOS}
    safe = safe_qualities(photos, targets, formats)
    tmp = Path(tempfile.mkdtemp(prefix="amberpicd-process-ratio-"))
    try:
        lines = [
            f"{started} {as_worker.describe()}",
            "Safe fixed qualities (photos): "
            + ", ".join(f"{f}@{t:g}=q{q}" for (f, t), q in safe.items()),
            *process_run_ratios(photos, targets, safe, formats, tmp, args.rounds, copies, _log),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
