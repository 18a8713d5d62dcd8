"""encode: the last step of a pipeline, choosing the output format and its settings.

It transforms nothing itself; ``imaging.encode`` turns a Picture into bytes with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from amberpicd.ops.base import Step
from amberpicd.ops.registry import register

Format = Literal["jpeg", "png", "webp", "avif", "tiff", "gif"]

EXTENSIONS: dict[str, str] = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "tiff": "tiff",
    "gif": "gif",
}
ANIMATED_FORMATS = frozenset({"webp", "gif", "png", "avif"})
ALPHA_FORMATS = frozenset({"png", "webp", "avif", "tiff", "gif"})


@register
class Encode(Step):
    name = "encode"
    shorthand = "format"

    format: Format
    quality: int | None = Field(default=None, ge=1, le=100)  # None: the format's default
    lossless: bool = False
    progressive: bool = True  # JPEG only
    effort: int | None = Field(default=None, ge=0, le=10)  # WebP method 0-6, AVIF speed 0-10
    max_bytes: ByteSize | None = Field(default=None, gt=0)
    background: str = "white"  # what transparent pixels become in formats without alpha

    @field_validator("format", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.lower()
            return {"jpg": "jpeg", "tif": "tiff"}.get(value, value)
        return value

    @model_validator(mode="after")
    def _lossless_where_possible(self) -> Encode:
        if self.lossless and self.format == "jpeg":
            raise ValueError("jpeg cannot be lossless (use png or webp with lossless: true)")
        return self

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]
