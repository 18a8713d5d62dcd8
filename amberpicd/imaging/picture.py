"""The in-memory image an operation works on: frames plus the metadata that travels with them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from PIL import Image


@dataclass
class Picture:
    """A decoded image. Still images have one frame; animations keep all of theirs.

    ``exif`` is the source's parsed EXIF (never written out unless the metadata policy
    keeps some of it); ``orientation`` is the EXIF orientation still to be applied
    (1 once pixels are upright).
    """

    frames: list[Image.Image]
    source_format: str = ""
    durations: list[int] = field(default_factory=list)  # ms per frame; empty for stills
    loop: int | None = 0  # 0 = forever; None = play once (no loop extension)
    icc: bytes | None = None
    exif: Image.Exif = field(default_factory=Image.Exif)
    xmp: bytes | None = None
    orientation: int = 1

    @property
    def image(self) -> Image.Image:
        """The first (for stills, the only) frame."""
        return self.frames[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def mode(self) -> str:
        return self.frames[0].mode

    @property
    def is_animated(self) -> bool:
        return len(self.frames) > 1

    def map(self, fn: Callable[[Image.Image], Image.Image]) -> Picture:
        """A copy with ``fn`` applied to every frame."""
        return replace(self, frames=[fn(f) for f in self.frames])

    def with_(self, **changes: object) -> Picture:
        return replace(self, **changes)
