"""benchmarks/process_ratio.write_inbox: the marginal cost of a file is measured over copies
that must each be content of its own (nothing recognising content may spare one) and cost
what their original costs (the same size, one pixel changed by one)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops

# benchmarks/ on the path only while process_ratio loads, and last: benchmarks/corpus.py
# (synthetic camera files) must not shadow tests/corpus.py for the tests collected after.
_BENCH = str(Path(__file__).resolve().parent.parent / "benchmarks")
sys.path.append(_BENCH)
try:
    from process_ratio import write_inbox
finally:
    sys.path.remove(_BENCH)


def _noise(size: tuple[int, int]) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise(size, 40) for _ in range(3)])


def test_copies_are_distinct_files_one_pixel_apart(tmp_path: Path) -> None:
    photos = {"a.jpg": _noise((64, 40)), "b.png": _noise((30, 50))}
    assert write_inbox(photos, tmp_path / "one", 1) == 8
    assert write_inbox(photos, tmp_path / "four", 4) == 32
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    four = {p.name: p for p in (tmp_path / "four").iterdir()}
    assert len(one) == 8 and len(four) == 32
    assert set(one) <= set(four)  # the small batch's files are in the big one
    assert len({p.read_bytes() for p in four.values()}) == 32
    for name, path in four.items():
        if "-c" not in name:
            continue
        with Image.open(path) as copy, Image.open(four[name.rsplit("-c", 1)[0] + ".png"]) as orig:
            assert copy.size == orig.size
            diff = ImageChops.difference(copy.convert("RGB"), orig.convert("RGB"))
            assert diff.getbbox() is not None and diff.getbbox()[2:] <= (4, 1)
            assert max(diff.getextrema()[0]) == 1 and diff.getextrema()[1:] == ((0, 0), (0, 0))


def test_a_symmetric_picture_is_refused(tmp_path: Path) -> None:
    """Its mirror is the same file: the batch would hold fewer distinct pictures than files."""
    symmetric = {"r.png": Image.new("RGB", (8, 6), (10, 20, 30))}
    with pytest.raises(ValueError, match="the same pixels as"):
        write_inbox(symmetric, tmp_path, 1)
