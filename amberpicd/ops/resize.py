"""resize: scale to a box (fit inside, fill and crop, or stretch) or by a factor."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from amberpicd.ops._common import (
    Gravity,
    Resample,
    gravity_fractions,
    gravity_offset,
    workable,
)
from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from PIL import Image

    from amberpicd.imaging.picture import Picture

Box = tuple[float, float, float, float]


class Resize(Operation):
    """Resize every frame.

    - ``mode: fit`` (default): the largest size inside ``width`` x ``height`` keeping the
      aspect ratio; either dimension may be left out. Never enlarges unless ``enlarge``.
    - ``mode: fill``: cover ``width`` x ``height`` keeping the aspect ratio, then cut the
      overflow away; ``gravity`` (center, north, south, east, west, north-east,
      north-west, south-east, south-west) says which part stays. Without ``enlarge``, a
      source smaller than the box is only cropped to the box's aspect ratio.
    - ``mode: exact``: stretch to exactly ``width`` x ``height`` (``enlarge`` not needed).
    - ``scale``: multiply both dimensions (instead of width/height); a factor above 1
      must say ``enlarge: true``.
    """

    name = "resize"

    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    scale: float | None = Field(default=None, gt=0)
    mode: Literal["fit", "fill", "exact"] = "fit"
    gravity: Gravity = "center"
    enlarge: bool = False
    resample: Resample = "lanczos"

    @model_validator(mode="after")
    def _consistent(self) -> Resize:
        box = self.width is not None or self.height is not None
        if self.scale is not None:
            if box:
                raise ValueError("give either scale or width/height, not both")
            if self.mode != "fit":
                raise ValueError(f"mode {self.mode} needs width and height, not scale")
            if self.scale > 1 and not self.enlarge:
                raise ValueError(f"scale {self.scale} enlarges the image: add enlarge: true")
            return self
        if not box:
            raise ValueError("give width, height (or both), or scale")
        if self.mode != "fit" and (self.width is None or self.height is None):
            raise ValueError(f"mode {self.mode} needs both width and height")
        return self

    def plan(self, size: Size) -> tuple[Size, Box]:
        """The output size and the source region (in ``size`` pixels) it is made from."""
        w, h = size
        whole: Box = (0.0, 0.0, float(w), float(h))
        if self.scale is not None:
            return (_dim(w * self.scale), _dim(h * self.scale)), whole
        if self.mode == "exact":
            return (self.width, self.height), whole  # type: ignore[return-value]
        if self.mode == "fit":
            fw = self.width / w if self.width else math.inf
            fh = self.height / h if self.height else math.inf
            if fw <= fh:
                factor, out = fw, (self.width, _dim(h * fw))
            else:
                factor, out = fh, (_dim(w * fh), self.height)
            if factor > 1 and not self.enlarge:
                return size, whole
            return out, whole  # type: ignore[return-value]
        # fill: the region of the source with the box's aspect ratio, placed by gravity.
        tw, th = self.width, self.height
        assert tw is not None and th is not None
        factor = max(tw / w, th / h)
        if factor > 1 and not self.enlarge:
            # Crop only: the largest box-shaped region inside the source, on whole pixels.
            shrink = min(w / tw, h / th)
            out = (min(w, _dim(tw * shrink)), min(h, _dim(th * shrink)))
            left, top = gravity_offset(size, out, self.gravity)
            return out, (left, top, left + out[0], top + out[1])
        rw, rh = tw / factor, th / factor
        fx, fy = gravity_fractions(self.gravity)
        left, top = (w - rw) * fx, (h - rh) * fy
        return (tw, th), (left, top, left + rw, top + rh)

    def apply(self, picture: Picture) -> Picture:
        size, box = self.plan(picture.size)
        if size == picture.size and box == (0, 0, *picture.size):
            return picture
        from amberpicd.imaging.resample import resample

        def one(im: Image.Image) -> Image.Image:
            im = workable(im)  # palette/bilevel frames would resample nearest-neighbour only
            if size == (box[2] - box[0], box[3] - box[1]):
                return im.crop(tuple(round(v) for v in box))  # fill without enlarging
            return resample(im, size, self.resample, box)

        return picture.map(one)

    def output_size(self, size: Size) -> Size | None:
        return self.plan(size)[0]

    def decode_size(self, size: Size) -> Size | None:
        if self.scale is not None:
            return size  # relative: a smaller decode would give a smaller output
        out, box = self.plan(size)
        region_w, region_h = box[2] - box[0], box[3] - box[1]
        factor = max(out[0] / region_w, out[1] / region_h)
        if factor >= 1:
            return size  # no reduction: every source pixel counts
        # The whole source at the scale the region is resampled at, rounded up so a
        # decoder that shrinks to at least this size never goes below the output.
        need = (math.ceil(size[0] * factor), math.ceil(size[1] * factor))
        return (min(size[0], max(need[0], out[0])), min(size[1], max(need[1], out[1])))


def _dim(value: float) -> int:
    return max(1, round(value))
