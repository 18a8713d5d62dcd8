"""optimize: a rule's output step that rewrites the source JPEG or PNG losslessly.

Same pixels, smaller file: JPEG entropy coding optimised (mozjpeg's jpegtran), PNG
recompressed (oxipng); the rule's ``keep_metadata`` policy still decides what metadata
the result carries. ``imaging.encode`` does the work; this is the configuration.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from amberpicd.ops.encode import Encode


class Optimize(Encode):
    name = "optimize"
    shorthand = None

    format: Literal["source"] = "source"  # type: ignore[assignment]

    @model_validator(mode="after")
    def _no_options(self) -> Optimize:
        extra = sorted(self.model_fields_set - {"format"})
        if extra:
            raise ValueError(f"optimize takes no options (got {', '.join(extra)})")
        return self

    @property
    def extension(self) -> str:
        return "jpg"  # placeholder: the output keeps the source's format and extension
