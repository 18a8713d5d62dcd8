"""flip: mirror the image left-right (``horizontal``) or top-bottom (``vertical``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from amberpicd.imaging.picture import Picture


class Flip(Operation):
    """``- flip`` mirrors left-right; ``- flip: vertical`` mirrors top-bottom."""

    name = "flip"
    shorthand = "direction"

    direction: Literal["horizontal", "vertical"] = "horizontal"

    def apply(self, picture: Picture) -> Picture:
        from PIL import Image

        op = (
            Image.Transpose.FLIP_LEFT_RIGHT
            if self.direction == "horizontal"
            else Image.Transpose.FLIP_TOP_BOTTOM
        )
        return picture.map(lambda im: im.transpose(op))

    def output_size(self, size: Size) -> Size | None:
        return size
