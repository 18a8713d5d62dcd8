"""Maps YAML operation names to their models, and builds the pipeline item type."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from amberpicd.ops.base import Step

STEPS: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make ``cls`` available in pipelines under ``cls.name``."""
    if cls.name in STEPS:
        raise RuntimeError(f"operation {cls.name!r} registered twice")
    STEPS[cls.name] = cls
    return cls


def load_all() -> dict[str, type[Step]]:
    """Import every module of ``amberpicd.ops`` so each registers itself."""
    import amberpicd.ops as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("base", "registry"):
            importlib.import_module(f"amberpicd.ops.{info.name}")
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
    steps = load_all()
    members = tuple(Annotated[cls, Tag(name)] for name, cls in sorted(steps.items()))
    names = ", ".join(sorted(steps))
    return Annotated[
        Union[members],  # noqa: UP007 - built at run time
        Discriminator(
            step_name,
            custom_error_type="unknown_operation",
            custom_error_message=f"unknown operation (expected one of: {names})",
        ),
    ]
