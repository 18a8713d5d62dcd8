"""background: flatten transparency onto a solid colour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amberpicd.ops._common import Color, has_alpha
from amberpicd.ops.base import Operation, Size
from amberpicd.ops.colors import rgba

if TYPE_CHECKING:
    from PIL import Image

    from amberpicd.imaging.picture import Picture


def flatten(im: Image.Image, color: str) -> Image.Image:
    """``im`` composited over ``color`` (CSS name or #hex; its own alpha is ignored).

    RGBA and palette images with transparency become RGB; LA becomes L when the colour
    is a gray, else RGB. An image without transparency is returned as it is (not copied).
    """
    if not has_alpha(im):
        return im
    from PIL import Image

    r, g, b, _ = rgba(color)
    gray = im.mode in ("LA", "La", "L") and r == g == b
    over = im.convert("RGBA")
    flat = Image.new("RGBA", im.size, (r, g, b, 255))
    flat.alpha_composite(over)
    return flat.convert("L" if gray else "RGB")


class Background(Operation):
    """``- background: "#202020"``: every transparent or translucent pixel is blended
    onto the colour (default white) and the alpha channel goes away."""

    name = "background"
    shorthand = "color"

    color: Color = "white"

    def apply(self, picture: Picture) -> Picture:
        if not any(has_alpha(f) for f in picture.frames):
            return picture
        return picture.map(lambda im: flatten(im, self.color))

    def output_size(self, size: Size) -> Size | None:
        return size
