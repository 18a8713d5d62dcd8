"""How many probes ``quality: auto``'s JPEG search takes, and how far above the smallest
passing file it stops, simulated on recorded score curves: the tool its constants are
tuned with (``imaging.quality``: NEAR, _STEER, _PRIORS).

    .venv/bin/python benchmarks/search_curves.py record     # ~2 min: the curves
    .venv/bin/python benchmarks/search_curves.py simulate   # instant: the search on them

``record`` encodes each of the 9 photos and 6 screenshots (photoset, fitted into 1024 px)
at JPEG q20-100 as the search's probes are written, and keeps, per quality, the lean
bounds and the published score of its pixels and the size of the real (optimised,
progressive) file. ``simulate`` runs the real search on them, its scorer answering as a
lean reference does (the lower bound where it decides the target, the published score
where not), and prints the probes and the bytes over the smallest passing file per set of
targets. Writes only benchmarks/out/curves-jpeg.json.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/corpus.py: Pillow's test images

import corpus  # noqa: E402
import curves as fake  # noqa: E402  (tests/curves.py: the search on a fake encoder and scorer)
from photoset import PHOTOS, SCREENS, load  # noqa: E402
from PIL import Image  # noqa: E402

from amberpicd.imaging import encode, quality, ssimulacra2  # noqa: E402
from amberpicd.ops.encode import Encode  # noqa: E402

CURVES = HERE / "out" / "curves-jpeg.json"
QUALITIES = range(20, 101)
TARGET_SETS = {
    "tuned (60, 70, 75, 80, 90), all 15": ((60, 70, 75, 80, 90), PHOTOS + SCREENS),
    "photos at 70, 75, 80": ((70, 75, 80), PHOTOS),
    "photos at 75": ((75,), PHOTOS),
    "not tuned on (50, 85, 88, 92, 95), all 15": ((50, 85, 88, 92, 95), PHOTOS + SCREENS),
    "screenshots at 50, 55, ... 90": (tuple(range(50, 91, 5)), SCREENS),
}


def record() -> None:
    spec = Encode(format="jpeg", quality="auto", target=75)
    curves: dict[str, dict[int, tuple[float, float, float, int]]] = {}
    for name in PHOTOS + SCREENS:
        im = load(corpus.pillow_images(), name, 1024)
        probe = encode._probe([im], spec, True)
        assert probe is not None
        lean, exact = ssimulacra2.Reference(im, lean=True), ssimulacra2.Reference(im)
        curve = {}
        for q in QUALITIES:
            with Image.open(io.BytesIO(probe(q))) as got:
                pixels = got.convert("RGB")
            low, high = lean.bounds(pixels)
            size = len(encode._save([im], "jpeg", encode._options(spec, q, True)))
            curve[q] = (low, high, exact.score(pixels), size)
        curves[name] = curve
        print(name, file=sys.stderr)
    CURVES.parent.mkdir(exist_ok=True)
    CURVES.write_text(json.dumps(curves))


def _lean(point: tuple[float, float, float, int], target: float) -> float:
    """A lean reference's answer: its lower bound where that decides ``target``, else the
    published score."""
    low, high, exact, _ = point
    return low if low >= target or high < target else exact


def simulate(targets, names, curves) -> tuple[int, float, int, float]:
    """Probes, bytes over the smallest passing files, outputs below the target, and the
    worst file over its smallest passing one (the sum hides a screenshot kept at 1.3x)."""
    probes = kept = smallest = misses = 0
    worst = 1.0
    for name in names:
        curve = {int(q): v for q, v in curves[name].items()}
        for q in range(1, QUALITIES[0]):  # below the recording: a point a step lower
            low, high, exact, size = curve[QUALITIES[0]]
            d = QUALITIES[0] - q
            curve[q] = (low - d, high - d, exact - d, size)
        for t in targets:
            found, _, _ = fake.search(
                lambda q, c=curve, t=t: _lean(c[q], t), "jpeg", t, jump=encode.FULL_CHROMA_QUALITY
            )
            probes += found.probes
            kept += curve[found.quality][3]
            passing = [v[3] for v in curve.values() if v[2] >= t]
            smallest += min(passing) if passing else curve[100][3]
            worst = max(worst, curve[found.quality][3] / (min(passing) if passing else 1e30))
            misses += curve[found.quality][2] < t
    return probes, kept / smallest, misses, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("record", "simulate"))
    args = ap.parse_args()
    if args.what == "record":
        record()
        return
    curves = json.loads(CURVES.read_text())
    near, past, flat = (quality.NEAR["jpeg"], quality.NEAR_ABOVE_JUMP["jpeg"],
                        quality.NEAR_FLAT["jpeg"])  # fmt: skip
    print(f"JPEG search, NEAR {near:g} ({past:g} past the jump, {flat:g} on flat curves): "
          "probes | files over the "
          "smallest passing (worst file) | outputs below the target")  # fmt: skip
    for label, (targets, names) in TARGET_SETS.items():
        probes, over, misses, worst = simulate(targets, names, curves)
        print(f"{label}: {probes} probes ({probes / len(names) / len(targets):.2f} a picture) "
              f"| {100 * (over - 1):.1f} % ({worst:.2f}x) | {misses}")  # fmt: skip


if __name__ == "__main__":
    main()
