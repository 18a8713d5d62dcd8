"""rotate: turn the image clockwise by any angle; multiples of 90 are lossless."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amberpicd.ops._common import Color, color_for, has_alpha, workable
from amberpicd.ops.base import Operation, Size
from amberpicd.ops.colors import rgba

if TYPE_CHECKING:
    from PIL import Image

    from amberpicd.imaging.picture import Picture

QUARTER_TURNS = (90, 180, 270)  # lossless turns: transposes, no resampling


class Rotate(Operation):
    """Rotate every frame ``degrees`` clockwise (as CSS, ImageMagick and sharp do).

    ``- rotate: 90``. Other angles resample (bicubic); ``expand`` grows the canvas to
    hold the whole image, and the exposed corners get ``fill`` (default: transparent
    when the image has alpha, else white; a transparent fill adds alpha to the image).
    """

    name = "rotate"
    shorthand = "degrees"

    degrees: float
    expand: bool = True
    fill: Color | None = None

    @property
    def turn(self) -> float:
        """The angle normalised to [0, 360)."""
        return self.degrees % 360

    def apply(self, picture: Picture) -> Picture:
        turn = self.turn
        if turn == 0:
            return picture
        if turn in QUARTER_TURNS:
            from PIL import Image

            # Clockwise turns; Pillow's ROTATE_n turns counter-clockwise.
            op = {
                90: Image.Transpose.ROTATE_270,
                180: Image.Transpose.ROTATE_180,
                270: Image.Transpose.ROTATE_90,
            }[int(turn)]
            return picture.map(lambda im: im.transpose(op))
        return picture.map(self._rotate_free)

    def _rotate_free(self, im: Image.Image) -> Image.Image:
        from PIL import Image

        im = workable(im)
        if self.fill is not None:
            fill = rgba(self.fill)
        else:
            fill = (0, 0, 0, 0) if has_alpha(im) else (255, 255, 255, 255)
        if fill[3] < 255 and im.mode in ("RGB", "L"):
            im = im.convert("RGBA" if im.mode == "RGB" else "LA")
        # Pillow turns counter-clockwise for positive angles.
        return im.rotate(
            -self.turn,
            resample=Image.Resampling.BICUBIC,
            expand=self.expand,
            fillcolor=color_for(im, fill),
        )

    def output_size(self, size: Size) -> Size | None:
        turn = self.turn
        if turn in (90, 270):
            return (size[1], size[0])
        if turn in (0, 180) or not self.expand:
            return size
        return None  # expanded canvas: Pillow's own rounding decides
