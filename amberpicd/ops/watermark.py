"""watermark: a text or image mark, blended into a corner (or edge, or the centre)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from amberpicd.errors import error_text
from amberpicd.ops._common import Color, UserPath, workable
from amberpicd.ops.base import Operation, Size
from amberpicd.ops.colors import rgba

if TYPE_CHECKING:
    from PIL import Image, ImageFont

    from amberpicd.imaging.picture import Picture

Position = Literal[
    "bottom-right",
    "bottom-left",
    "top-right",
    "top-left",
    "center",
    "top",
    "bottom",
    "left",
    "right",
]
# Where the mark sits inside the margins, as fractions of the free space (x, y).
ANCHORS: dict[str, tuple[float, float]] = {
    "bottom-right": (1.0, 1.0),
    "bottom-left": (0.0, 1.0),
    "top-right": (1.0, 0.0),
    "top-left": (0.0, 0.0),
    "center": (0.5, 0.5),
    "top": (0.5, 0.0),
    "bottom": (0.5, 1.0),
    "left": (0.0, 0.5),
    "right": (1.0, 0.5),
}
TEXT_SIZE = 0.05  # font size as a fraction of the shorter side
IMAGE_SIZE = 0.2  # mark width as a fraction of the image width
BLENDABLE = frozenset({"RGB", "RGBA", "L", "LA", "CMYK"})  # modes the mark is blended in
OUTLINE_ALPHA = 150  # of the contrasting outline that keeps text readable on any background


class Watermark(Operation):
    """Blend ``text`` (``- watermark: "© Me"``) or an ``image`` file onto every frame.

    ``position`` (default bottom-right), ``opacity`` 0-1, ``margin`` (fraction of the
    shorter side). ``size``: for text, the font size as a fraction of the shorter side
    (default 0.05); for an image, its width as a fraction of the image width (default
    0.2). Text takes a ``color`` (default white; it gets a thin contrasting outline) and
    an optional ``font`` (a TrueType/OpenType file; default: Pillow's built-in font).
    The image file is read when the step runs, not when the configuration loads.
    """

    name = "watermark"
    shorthand = "text"

    text: str | None = Field(default=None, min_length=1)
    image: UserPath | None = None
    position: Position = "bottom-right"
    opacity: float = Field(default=0.5, ge=0, le=1)
    size: float | None = Field(default=None, gt=0, le=1)
    margin: float = Field(default=0.02, ge=0, lt=0.5)
    color: Color = "white"
    font: UserPath | None = None

    @model_validator(mode="after")
    def _one_mark(self) -> Watermark:
        if (self.text is None) == (self.image is None):
            raise ValueError("give either text or image")
        if self.image is not None:
            extra = {"color", "font"} & self.model_fields_set
            if extra:
                raise ValueError(f"{', '.join(sorted(extra))} applies to text, not image")
        return self

    def apply(self, picture: Picture) -> Picture:
        if self.opacity == 0:
            return picture
        source = self._load_image() if self.image is not None else None
        marks: dict[Size, tuple[Image.Image, tuple[int, int]]] = {}

        def one(im: Image.Image) -> Image.Image:
            if im.size not in marks:
                mark = self._image_mark(source, im.size) if source else self._text_mark(im.size)
                marks[im.size] = (mark, self._place(im.size, mark.size))
            mark, (x, y) = marks[im.size]
            out = workable(im)  # palette and bilevel frames become RGB(A) / L
            if out.mode not in BLENDABLE:
                out = out.convert("RGBA")
            out = out.copy() if out is im else out
            # Blend only the patch under the mark: every other pixel stays exactly as it was.
            box = (x, y, min(im.width, x + mark.width), min(im.height, y + mark.height))
            patch = out.crop(box).convert("RGBA")
            patch.alpha_composite(mark.crop((0, 0, box[2] - x, box[3] - y)))
            out.paste(patch.convert(out.mode), box)
            return out

        return picture.map(one)

    def output_size(self, size: Size) -> Size | None:
        return size

    def _place(self, size: Size, mark: Size) -> tuple[int, int]:
        margin = round(self.margin * min(size))
        fx, fy = ANCHORS[self.position]
        x = margin + round((size[0] - 2 * margin - mark[0]) * fx)
        y = margin + round((size[1] - 2 * margin - mark[1]) * fy)
        return max(0, x), max(0, y)

    def _faded(self, mark: Image.Image) -> Image.Image:
        alpha = mark.getchannel("A").point(lambda a: round(a * self.opacity))
        mark.putalpha(alpha)
        return mark

    def _font(self, px: int) -> ImageFont.FreeTypeFont:
        from PIL import ImageFont

        if self.font is None:
            font = ImageFont.load_default(size=px)
            if not isinstance(font, ImageFont.FreeTypeFont):
                raise ValueError("text watermarks need Pillow built with FreeType")
            return font
        try:
            return ImageFont.truetype(str(self.font), px)
        except OSError as exc:
            raise ValueError(f"cannot load font {self.font}: {error_text(exc)}") from None

    def _text_mark(self, size: Size) -> Image.Image:
        from PIL import Image, ImageDraw

        assert self.text is not None
        shorter = min(size)
        room = size[0] - 2 * round(self.margin * shorter)
        px = max(1, round((self.size or TEXT_SIZE) * shorter))
        for _ in range(4):  # shrink long text until it fits between the margins
            font = self._font(px)
            stroke = max(1, round(px / 18))
            probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
            left, top, right, bottom = probe.textbbox(
                (0, 0), self.text, font=font, stroke_width=stroke
            )
            if right - left <= room or px == 1:
                break
            px = max(1, int(px * room / (right - left)))
        color = rgba(self.color)
        luma = (color[0] * 299 + color[1] * 587 + color[2] * 114) / 1000
        outline = (0, 0, 0, OUTLINE_ALPHA) if luma >= 128 else (255, 255, 255, OUTLINE_ALPHA)
        mark = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
        ImageDraw.Draw(mark).text(
            (-left, -top),
            self.text,
            fill=color,
            font=font,
            stroke_width=stroke,
            stroke_fill=outline,
        )
        return self._faded(mark)

    def _load_image(self) -> Image.Image:
        from PIL import Image

        try:
            with Image.open(self.image) as mark:  # type: ignore[arg-type]
                return mark.convert("RGBA")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ValueError(f"cannot read watermark image {self.image}: {reason}") from None

    def _image_mark(self, source: Image.Image, size: Size) -> Image.Image:
        from PIL import Image

        margin = 2 * round(self.margin * min(size))
        width = (self.size or IMAGE_SIZE) * size[0]
        factor = min(
            width / source.width,
            (size[0] - margin) / source.width,
            (size[1] - margin) / source.height,
        )
        target = (max(1, round(source.width * factor)), max(1, round(source.height * factor)))
        return self._faded(source.resize(target, Image.Resampling.LANCZOS))
