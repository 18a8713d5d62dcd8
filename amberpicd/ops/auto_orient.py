"""auto_orient: turn the pixels upright per the source's EXIF orientation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from PIL import Image

    from amberpicd.imaging.picture import Picture


def transpose_for(orientation: int) -> Image.Transpose | None:
    """The transpose a viewer applies for an EXIF orientation (as ImageOps.exif_transpose);
    None for 1 (upright) and for values outside 1-8."""
    from PIL import Image

    return {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)


class AutoOrient(Operation):
    """Apply ``picture.orientation`` (EXIF 1-8, set by the decoder) to every frame.

    The result has ``orientation == 1``. Values outside 1-8 are treated as 1.
    """

    name = "auto_orient"

    def apply(self, picture: Picture) -> Picture:
        op = transpose_for(picture.orientation)
        if op is None:
            return picture.with_(orientation=1)
        return picture.map(lambda im: im.transpose(op)).with_(orientation=1)

    # Sizes are upright sizes: the orientation is not known from a size alone, so the
    # pipeline must walk sizes with width and height already swapped for orientations 5-8.
    def output_size(self, size: Size) -> Size | None:
        return size

    def decode_size(self, size: Size) -> Size | None:
        return size


def oriented_first(ops: tuple[Operation, ...]) -> tuple[Operation, ...]:
    """``ops`` with orientation always normalised: ``auto_orient`` first unless they
    place it themselves."""
    return ops if any(isinstance(op, AutoOrient) for op in ops) else (AutoOrient(), *ops)
