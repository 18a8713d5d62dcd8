"""flip: mirror the image left-right (``horizontal``) or top-bottom (``vertical``)."""

from __future__ import annotations

from typing import Literal

from PIL import Image

from amberpicd.imaging.picture import Picture
from amberpicd.ops.base import Operation, Size


class Flip(Operation):
    """``- flip`` mirrors left-right; ``- flip: vertical`` mirrors top-bottom."""

    name = "flip"
    shorthand = "direction"

    direction: Literal["horizontal", "vertical"] = "horizontal"

    def apply(self, picture: Picture) -> Picture:
        op = (
            Image.Transpose.FLIP_LEFT_RIGHT
            if self.direction == "horizontal"
            else Image.Transpose.FLIP_TOP_BOTTOM
        )
        return picture.map(lambda im: im.transpose(op))

    def output_size(self, size: Size) -> Size | None:
        return size
