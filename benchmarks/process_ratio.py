"""The user-facing side of benchmarks/compress.py: whole ``amberpicd process`` runs with
``quality: auto`` against the same rule at a fixed quality (wall and CPU seconds of every
process of the run, by ``harness``). Writes only below the temporary folder it is given."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import harness
from PIL import Image


def process_run_ratios(
    photos: dict[str, Image.Image], targets, safe, formats, tmp: Path, rounds: int = 2
) -> list[str]:
    """The user-facing ratio: a whole ``amberpicd process`` run (start-up, decode, encode,
    publish, journal; default workers) over the photos with ``quality: auto`` against the
    same rule at the safe fixed quality, wall and CPU seconds of every process of the run,
    the rounds interleaved and the best kept. The photos go in as PNGs of the fitted
    pictures (the same pixels the encode-step table sees), each also mirrored, flipped and
    turned (4 files a photo: start-up weighs less than over 9 files, though for JPEG it is still
    a large part of the run; a large batch approaches the per-file ratio)."""
    inbox = tmp / "process-in"
    inbox.mkdir(exist_ok=True)
    turns = {"": None, "-m": Image.Transpose.FLIP_LEFT_RIGHT,
             "-f": Image.Transpose.FLIP_TOP_BOTTOM, "-r": Image.Transpose.ROTATE_180}  # fmt: skip
    for name, im in photos.items():
        for suffix, turn in turns.items():
            (im if turn is None else im.transpose(turn)).save(
                inbox / f"{Path(name).stem}{suffix}.png"
            )
    files = len(photos) * len(turns)
    rows = [
        f"\n### `amberpicd process` over {files} files (the photos, each also mirrored, "
        "flipped and turned): `quality: auto` against the safe fixed quality (wall and CPU s "
        f"of all processes, best of {rounds} interleaved rounds, load "
        f"{os.getloadavg()[0]:.1f})\n",
        "| target | format | fixed wall | auto wall | ratio | fixed CPU | auto CPU | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        for fmt in formats:
            best: dict[str, tuple[float, float]] = {}
            for _ in range(rounds):
                for kind, quality in (("fixed", safe[(fmt, t)]), ("auto", "auto")):
                    run = tmp / f"process-{kind}"
                    shutil.rmtree(run, ignore_errors=True)
                    run.mkdir()
                    enc = {"format": fmt, "quality": quality}
                    if quality == "auto":
                        enc["target"] = t
                    rule = {
                        "name": "bench",
                        "pipeline": [{"resize": {"width": 4096, "height": 4096}}, {"encode": enc}],
                        "keep_metadata": [],
                        "output": str(run / "out" / "{stem}.{ext}"),
                    }
                    config = run / "config.yaml"
                    config.write_text(json.dumps({"version": 1, "rules": [rule]}))  # JSON is YAML
                    argv = (sys.executable, "-m", "amberpicd", "-c", str(config), "process")
                    env = {"XDG_STATE_HOME": str(run / "state")}
                    m = harness.run([harness.Command((*argv, str(inbox)), env)])
                    if m.errors:
                        raise RuntimeError("; ".join(m.errors))
                    old = best.get(kind, (1e9, 1e9))
                    best[kind] = (min(old[0], m.seconds), min(old[1], m.cpu))
            (fw, fc), (aw, ac) = best["fixed"], best["auto"]
            rows.append(
                f"| {t:g} | {fmt} | {fw:.2f} | {aw:.2f} | {aw / fw:.1f}x | {fc:.2f} | {ac:.2f} "
                f"| {ac / fc:.1f}x |"
            )
    return rows
