"""The base of every operation: a frozen, strict pydantic model with ``apply``.

In YAML an operation is written as its name alone (``- auto_orient``), as a one-key
mapping (``- resize: {width: 2048}``) or, where the model names a ``shorthand`` field,
with a scalar (``- rotate: 90``). Unknown names and keys are load-time errors.

The config loads these models, and the config never loads Pillow: an operation module
imports Pillow (and the imaging code that needs it) inside the functions that touch
pixels, never at its top. The fork server loads that side before forking
(``registry.load_pixel_side``), so no worker pays for it in its first job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from amberpicd.imaging.picture import Picture

Size = tuple[int, int]


class Step(BaseModel):
    """Anything that may stand in a pipeline (an Operation, or the final ``encode``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    shorthand: ClassVar[str | None] = None  # field that a scalar argument fills

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # The pipeline hands us the YAML item as written: "name" or {name: args}.
        if isinstance(data, str) and data == cls.name:
            return {}
        if isinstance(data, dict) and len(data) == 1 and cls.name in data:
            data = data[cls.name]
            if data is None:
                return {}
            if not isinstance(data, dict):
                if cls.shorthand is None:
                    raise ValueError(f"{cls.name} takes a mapping of options")
                return {cls.shorthand: data}
        return data


class Operation(Step):
    """A transformation of a Picture. Subclasses set ``name`` and implement ``apply``."""

    def apply(self, picture: Picture) -> Picture:
        raise NotImplementedError

    def decode_size(self, size: Size) -> Size | None:
        """The smallest source size (after earlier steps) this step needs, to let the
        decoder shrink on load; ``size`` is the full size it would get. ``None`` means
        full resolution is needed (the safe default)."""
        return None

    def output_size(self, size: Size) -> Size | None:
        """The size this step turns ``size`` into, when known without pixels; ``None``
        when unknown (then no later step can ask for a smaller decode)."""
        return None
