"""sharpen: an unsharp mask, typically after a downscale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from amberpicd.ops._common import workable
from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from PIL import Image

    from amberpicd.imaging.picture import Picture


class Sharpen(Operation):
    """Unsharp mask: ``radius`` (px of blur), ``percent`` (strength), ``threshold``
    (minimum brightness change, 0-255, that gets sharpened). Alpha is left as it is."""

    name = "sharpen"

    radius: float = Field(default=1.0, gt=0, le=100)
    percent: int = Field(default=60, ge=0, le=1000)
    threshold: int = Field(default=2, ge=0, le=255)

    def apply(self, picture: Picture) -> Picture:
        from PIL import ImageFilter

        mask = ImageFilter.UnsharpMask(self.radius, self.percent, self.threshold)

        def one(im: Image.Image) -> Image.Image:
            im = workable(im)
            if im.mode in ("RGBA", "LA"):
                # Sharpen the colour only: a sharpened alpha edge shows halos.
                color = im.convert(im.mode[:-1]).filter(mask)
                color.putalpha(im.getchannel("A"))
                return color
            if im.mode not in ("RGB", "L", "CMYK"):
                raise ValueError(f"cannot sharpen {im.mode} images")
            return im.filter(mask)

        return picture.map(one)

    def output_size(self, size: Size) -> Size | None:
        return size
