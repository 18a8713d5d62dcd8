"""The pipeline steps a config may name: one explicit list (``ALL_STEPS``), the way organize
lists its ``ALL_ACTIONS``. A new operation is written in its own module and added here;
nothing is discovered. Also builds the pydantic type of one pipeline item from the list,
and names what the steps load when they first touch pixels (``load_pixel_side``)."""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from amberpicd.ops.auto_orient import AutoOrient
from amberpicd.ops.background import Background
from amberpicd.ops.base import Step
from amberpicd.ops.crop import Crop
from amberpicd.ops.encode import Encode
from amberpicd.ops.flip import Flip
from amberpicd.ops.grayscale import Grayscale
from amberpicd.ops.optimize import Optimize
from amberpicd.ops.resize import Resize
from amberpicd.ops.rotate import Rotate
from amberpicd.ops.sharpen import Sharpen
from amberpicd.ops.to_srgb import ToSrgb
from amberpicd.ops.watermark import Watermark

ALL_STEPS: tuple[type[Step], ...] = (
    AutoOrient,
    Background,
    Crop,
    Encode,
    Flip,
    Grayscale,
    Optimize,
    Resize,
    Rotate,
    Sharpen,
    ToSrgb,
    Watermark,
)


def _by_name(steps: tuple[type[Step], ...]) -> dict[str, type[Step]]:
    named: dict[str, type[Step]] = {}
    for cls in steps:
        if cls.name in named:
            raise RuntimeError(f"operation {cls.name!r} listed twice")
        named[cls.name] = cls
    return named


STEPS: dict[str, type[Step]] = _by_name(ALL_STEPS)  # YAML name → model

# What the steps import inside the functions that touch pixels (never at their top: the
# config imports this registry and must not load Pillow).
PIXEL_MODULES = (
    "PIL.Image",
    "PIL.ImageCms",
    "PIL.ImageDraw",
    "PIL.ImageFilter",
    "PIL.ImageFont",
    "amberpicd.imaging.resample",
)


def load_pixel_side() -> None:
    """Import ``PIXEL_MODULES``: the fork server calls this before it forks, so that no
    worker imports them in the middle of its first job."""
    for name in PIXEL_MODULES:
        importlib.import_module(name)


def load_all() -> dict[str, type[Step]]:
    """Every step by its YAML name (``STEPS``)."""
    return STEPS


def step_name(item: Any) -> str | None:
    """The operation name a YAML pipeline item is written with (None if malformed)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        return next(iter(item))
    if isinstance(item, Step):
        return item.name
    return None


def pipeline_item_type() -> Any:
    """The pydantic type of one pipeline item: a union tagged by operation name."""
    members = tuple(Annotated[cls, Tag(name)] for name, cls in sorted(STEPS.items()))
    names = ", ".join(sorted(STEPS))
    return Annotated[
        Union[members],  # noqa: UP007 - built at run time
        Discriminator(
            step_name,
            custom_error_type="unknown_operation",
            custom_error_message=f"unknown operation (expected one of: {names})",
        ),
    ]
