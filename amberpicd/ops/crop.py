"""crop: cut out a pixel box, or the largest region of a given aspect ratio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import field_validator, model_validator

from amberpicd.ops._common import Gravity, gravity_offset
from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from amberpicd.imaging.picture import Picture

PixelBox = tuple[int, int, int, int]


def parse_aspect(value: object) -> float:
    """``"16:9"``, ``"1.5"`` or ``1.5`` as width / height."""
    if isinstance(value, bool):
        raise ValueError("aspect must be W:H (like 16:9) or a number")
    if isinstance(value, int | float):
        ratio = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if ":" in text:
                w, h = text.split(":", 1)
                ratio = float(w) / float(h)
            else:
                ratio = float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"aspect {value!r} is not W:H (like 16:9) or a number") from None
    else:
        raise ValueError("aspect must be W:H (like 16:9) or a number")
    if not ratio > 0 or ratio == float("inf"):
        raise ValueError(f"aspect {value!r} must be a positive ratio")
    return ratio


class Crop(Operation):
    """Crop every frame.

    ``box: [left, top, right, bottom]`` in pixels of the image as it reaches this step,
    or ``aspect: "16:9"`` (or a number, width / height) to keep the largest region of
    that shape, placed by ``gravity`` (center, north, south, east, west, north-east,
    north-west, south-east, south-west).
    """

    name = "crop"

    box: PixelBox | None = None
    aspect: str | float | None = None
    gravity: Gravity = "center"

    @field_validator("box")
    @classmethod
    def _box(cls, box: PixelBox | None) -> PixelBox | None:
        if box is None:
            return None
        left, top, right, bottom = box
        if min(box) < 0:
            raise ValueError("box coordinates must not be negative")
        if right <= left or bottom <= top:
            raise ValueError(
                "box must be [left, top, right, bottom] with right > left, bottom > top"
            )
        return box

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, aspect: str | float | None) -> str | float | None:
        if aspect is not None:
            parse_aspect(aspect)
        return aspect

    @model_validator(mode="after")
    def _one(self) -> Crop:
        if (self.box is None) == (self.aspect is None):
            raise ValueError("give either box or aspect")
        if self.box is not None and "gravity" in self.model_fields_set:
            raise ValueError("gravity applies to aspect, not to box")
        return self

    def region(self, size: Size) -> PixelBox:
        """The pixel box this crop cuts from an image of ``size``."""
        if self.box is not None:
            return self.box
        w, h = size
        ratio = parse_aspect(self.aspect)
        if w / h > ratio:
            inner = (max(1, min(w, round(h * ratio))), h)
        else:
            inner = (w, max(1, min(h, round(w / ratio))))
        left, top = gravity_offset(size, inner, self.gravity)
        return (left, top, left + inner[0], top + inner[1])

    def apply(self, picture: Picture) -> Picture:
        w, h = picture.size
        box = self.region((w, h))
        if box[2] > w or box[3] > h:
            raise ValueError(f"crop box {list(box)} is outside the {w}×{h} image")  # noqa: RUF001
        if box == (0, 0, w, h):
            return picture
        return picture.map(lambda im: im.crop(box))

    def output_size(self, size: Size) -> Size | None:
        left, top, right, bottom = self.region(size)
        return (right - left, bottom - top)
