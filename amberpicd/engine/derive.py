"""Several outputs from one file: a smaller output may start from a larger one's resized
picture instead of the full decode, when that gives the same result.

A resize from an intermediate that is at least ``GAP`` times the output size keeps every
detail the output can show (the intermediate only lost frequencies above its own Nyquist
limit), the way Pillow's ``reducing_gap`` and libvips' shrink-on-load work. So a rule whose
pipeline is "auto_orient, resize" leaves a picture that later rules starting with
"auto_orient, resize" may use: a 320 px thumbnail from the 2048 px web version instead of
the 12 MP original, 40x fewer pixels to filter.
"""

from __future__ import annotations

from collections.abc import Sequence

from amberpicd.imaging.picture import Picture
from amberpicd.ops.auto_orient import AutoOrient
from amberpicd.ops.base import Operation, Size
from amberpicd.ops.resize import Resize

GAP = 3.0  # the intermediate must be this many times the output, on both axes


def lead_resize(steps: Sequence[Operation]) -> Resize | None:
    """The resize of a rule whose steps (orientation normalised) start "auto_orient,
    resize" (filtered, not nearest-neighbour), else None."""
    if len(steps) < 2 or not isinstance(steps[0], AutoOrient):
        return None
    resize = steps[1]
    if not isinstance(resize, Resize) or resize.resample == "nearest":
        return None
    return resize


def reusable(steps: Sequence[Operation]) -> bool:
    """True when the rule's picture is the whole upright image, uniformly scaled down (or
    left as it is): nothing but "auto_orient, resize" without cropping or stretching."""
    resize = lead_resize(steps)
    return (
        resize is not None
        and len(steps) == 2
        and resize.mode == "fit"
        and (resize.scale is None or resize.scale <= 1)
        and not resize.enlarge
    )


def start(lead: Resize | None, upright: Size, made: Sequence[Picture]) -> Picture | None:
    """The smallest picture in ``made`` (pictures of reusable rules) a rule whose leading
    resize is ``lead`` can start from with the same output, or None: then it starts from
    the decoded source."""
    if lead is None:
        return None
    want = lead.plan(upright)[0]
    for picture in sorted(made, key=lambda p: p.size[0] * p.size[1]):
        if picture.orientation != 1:
            continue
        size, box = lead.plan(picture.size)
        region = (box[2] - box[0], box[3] - box[1])
        if size == want and all(r >= GAP * s for r, s in zip(region, size, strict=True)):
            return picture
    return None


def order(sizes: Sequence[Size | None]) -> list[int]:
    """Indices of outputs of these sizes, larger first (so smaller ones can start from
    them); outputs whose size is unknown before decoding go first; ties keep the order."""

    def area(index: int) -> float:
        size = sizes[index]
        return float("inf") if size is None else size[0] * size[1]

    return sorted(range(len(sizes)), key=lambda i: -area(i))
