"""Helpers shared by the operations: gravity, colours, alpha and mode handling, user paths.

Nothing here is an operation: ``registry.ALL_STEPS`` lists those. Importable without
Pillow, as every operation module is (the config loads them): the two helpers that call
Pillow import it when called. Colours are parsed by ``colors`` (Pillow's syntax, without
Pillow), so a config that sets one loads no Pillow either.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator

from amberpicd.errors import printable
from amberpicd.ops.colors import rgba

if TYPE_CHECKING:
    from PIL import Image, ImageCms

Size = tuple[int, int]

# Where a region sits inside a larger one. Compass names only (north = top, east = right);
# no top/bottom/left/right aliases, so each placement has exactly one spelling.
Gravity = Literal[
    "center",
    "north",
    "south",
    "east",
    "west",
    "north-east",
    "north-west",
    "south-east",
    "south-west",
]

Resample = Literal["lanczos", "bicubic", "bilinear", "nearest"]

ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def gravity_fractions(gravity: str) -> tuple[float, float]:
    """Where along each axis (0 = left/top, 1 = right/bottom) ``gravity`` anchors."""
    fx = 0.5
    fy = 0.5
    if "west" in gravity:
        fx = 0.0
    elif "east" in gravity:
        fx = 1.0
    if "north" in gravity:
        fy = 0.0
    elif "south" in gravity:
        fy = 1.0
    return fx, fy


def gravity_offset(outer: Size, inner: Size, gravity: str) -> tuple[int, int]:
    """Top-left corner of an ``inner`` box placed inside ``outer`` by ``gravity``."""
    fx, fy = gravity_fractions(gravity)
    return round((outer[0] - inner[0]) * fx), round((outer[1] - inner[1]) * fy)


_SHOWN = 40  # of a refused colour's text: enough to recognise it, one short line whatever it is


def _check_color(value: str) -> str:
    try:
        rgba(value)
    except ValueError:
        # The text as written (printable, never a repr: a backslash stays one backslash).
        shown = printable(value[:_SHOWN]) + ("..." if len(value) > _SHOWN else "")
        raise ValueError(
            f"unknown colour '{shown}' (use a CSS colour name, #rrggbb, #rrggbbaa, "
            "rgb(), rgba(), hsl() or hsv())"
        ) from None
    return value


Color = Annotated[str, AfterValidator(_check_color)]


def _expand(path: Path) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(path))))


UserPath = Annotated[Path, AfterValidator(_expand)]


def has_alpha(im: Image.Image) -> bool:
    """True when ``im`` can hold transparent pixels (alpha band or a transparency key)."""
    return im.mode in ALPHA_MODES or "transparency" in im.info


def color_for(im: Image.Image, color: tuple[int, int, int, int]) -> float | tuple[int, ...]:
    """``color`` in the pixel format of ``im`` (gray value for L, RGBA for RGBA, ...)."""
    r, g, b, a = color
    if im.mode in ("L", "I", "F", "I;16"):
        return round((r * 299 + g * 587 + b * 114) / 1000)
    if im.mode == "LA":
        return (round((r * 299 + g * 587 + b * 114) / 1000), a)
    if im.mode == "RGB":
        return (r, g, b)
    if im.mode == "CMYK":
        return (255 - r, 255 - g, 255 - b, 0)  # naive, as Pillow's own RGB to CMYK
    return color


def workable(im: Image.Image) -> Image.Image:
    """``im`` in a mode every filter and resampler handles well.

    Palette and bilevel images resample with nearest-neighbour only and cannot be
    filtered, so they become RGB(A) or L; other modes are returned as they are.
    """
    if im.mode == "P" or im.mode == "PA":
        return im.convert("RGBA" if has_alpha(im) else "RGB")
    if im.mode == "1":
        return im.convert("L")
    if im.mode in ("RGB", "L") and "transparency" in im.info:
        return im.convert("RGBA" if im.mode == "RGB" else "LA")
    return im


def open_profile(icc: bytes | None) -> ImageCms.ImageCmsProfile | None:
    """The ICC profile in ``icc``; None when there is none or it cannot be parsed."""
    if not icc:
        return None
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
