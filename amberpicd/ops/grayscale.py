"""grayscale: drop colour, keeping transparency."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amberpicd.ops._common import has_alpha, open_profile
from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from PIL import Image

    from amberpicd.imaging.picture import Picture


class Grayscale(Operation):
    """Every frame becomes ``L`` (``LA`` when it has transparency), by ITU-R 601 luma.

    A colour ICC profile no longer describes the pixels, so it is dropped (the gray
    output is untagged, read as sRGB gray); a gray profile on a gray source is kept.
    """

    name = "grayscale"

    def apply(self, picture: Picture) -> Picture:
        def one(im: Image.Image) -> Image.Image:
            if im.mode in ("L", "LA"):
                return im
            return im.convert("LA" if has_alpha(im) else "L")

        profile = open_profile(picture.icc)
        gray_icc = profile is not None and profile.profile.xcolor_space.strip() == "GRAY"
        icc = picture.icc if gray_icc else None
        if all(f.mode in ("L", "LA") for f in picture.frames) and icc == picture.icc:
            return picture
        return picture.map(one).with_(icc=icc)

    def output_size(self, size: Size) -> Size | None:
        return size
