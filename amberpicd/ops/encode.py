"""encode: the last step of a pipeline, choosing the output format and its settings.

It transforms nothing itself; ``imaging.encode`` turns a Picture into bytes with it.
``quality: auto`` asks for the smallest file whose SSIMULACRA2 score against the
picture before encoding reaches ``target``; ``format: auto`` tries the ``formats`` and
keeps the smallest; ``min_saving`` falls back to the source, losslessly optimised, when
re-encoding saves too little. ``optimize`` (a rule's whole output step) rewrites the
source JPEG or PNG losslessly.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from amberpicd.ops.base import Step

Format = Literal["jpeg", "png", "webp", "avif", "tiff", "gif"]
Candidate = Literal["jpeg", "png", "webp", "avif"]

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
# SSIMULACRA2 scale: 90 visually lossless, 80 very high, 70 high, 50 medium. 80 keeps
# photos indistinguishable at a normal viewing distance (the "looks the same" promise).
DEFAULT_TARGET = 80.0
AUTO_FORMATS: tuple[Candidate, ...] = ("avif", "webp", "jpeg", "png")
_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
_ENCODER_PACKAGES = {"mozjpeg": "pyvips", "jpegli": "pyjpegli"}  # imaging.jpeg runs them


def _lower_alias(value: object) -> object:
    if isinstance(value, str):
        value = value.lower()
        return _ALIASES.get(value, value)
    return value


def _percent(value: object) -> object:
    """``10%``, ``"10"`` or ``0.1`` as a fraction in [0, 1)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            return float(text[:-1]) / 100
        return float(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
        return value / 100  # min_saving: 10 means 10 %
    return value


class Encode(Step):
    name = "encode"
    shorthand = "format"

    format: Format | Literal["auto"]
    # None: the format's default; "auto": the smallest file reaching ``target``.
    quality: int | Literal["auto"] | None = Field(default=None)
    target: float | None = Field(default=None, ge=30, le=100)  # SSIMULACRA2; with auto
    formats: tuple[Candidate, ...] | None = None  # format: auto's candidates
    lossless: bool = False
    progressive: bool = True  # JPEG only
    effort: int | None = Field(default=None, ge=0, le=10)  # WebP method 0-6, AVIF speed 0-10
    max_bytes: ByteSize | None = Field(default=None, gt=0)
    min_saving: float | None = Field(default=None, ge=0, lt=1)  # fraction of the source
    background: str = "white"  # what transparent pixels become in formats without alpha
    # JPEG's encoder (imaging.jpeg, which also says what auto runs and why).
    encoder: Literal["auto", "libjpeg", "mozjpeg", "jpegli"] = "auto"

    @field_validator("format", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        return _lower_alias(value)

    @field_validator("formats", mode="before")
    @classmethod
    def _format_list(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):
            return tuple(_lower_alias(v) for v in value)
        return value

    @field_validator("quality", mode="before")
    @classmethod
    def _quality(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"must be greater than or equal to 1, got {value}")
            if value > 100:
                raise ValueError(f"must be less than or equal to 100, got {value}")
        return value

    @field_validator("min_saving", mode="before")
    @classmethod
    def _min_saving(cls, value: object) -> object:
        return _percent(value)

    @model_validator(mode="after")
    def _consistent(self) -> Encode:
        if self.lossless and self.format == "jpeg":
            raise ValueError("jpeg cannot be lossless (use png or webp with lossless: true)")
        if self.format == "auto":
            if isinstance(self.quality, int):
                raise ValueError("format: auto chooses the quality too (quality: auto)")
            if self.lossless:
                raise ValueError("format: auto with lossless: true (name a format)")
            if self.formats is not None and not self.formats:
                raise ValueError("formats lists no format")
        elif self.formats is not None:
            raise ValueError("formats is for format: auto")
        if self.target is not None and not self.auto_quality:
            raise ValueError("target is for quality: auto or format: auto")
        if self.encoder != "auto" and "jpeg" not in self.candidates:
            raise ValueError(f"encoder is for jpeg (encoder: {self.encoder})")
        package = _ENCODER_PACKAGES.get(self.encoder)
        if package is not None and importlib.util.find_spec(package) is None:
            raise ValueError(
                f"encoder: {self.encoder} needs the {package} package (pip install {package})"
            )
        return self

    @property
    def auto_quality(self) -> bool:
        return self.quality == "auto" or self.format == "auto"

    @property
    def target_score(self) -> float:
        return DEFAULT_TARGET if self.target is None else self.target

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """The formats tried: the list for format: auto, else the one format."""
        if self.format == "auto":
            return self.formats or AUTO_FORMATS
        return (self.format,)  # type: ignore[return-value]

    @property
    def fixed_quality(self) -> int | None:
        return self.quality if isinstance(self.quality, int) else None

    @property
    def extension(self) -> str:
        """The extension of a fixed format (format: auto's follows the chosen one)."""
        return EXTENSIONS[self.format] if self.format != "auto" else EXTENSIONS["jpeg"]
