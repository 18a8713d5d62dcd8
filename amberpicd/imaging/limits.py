"""What decoding accepts: the limits ``imaging.decode`` checks a file against.

Imaging knows no configuration: ``DecodeLimits`` names the few values it reads, and the
caller hands in anything that has them (``FileLimits``, built from ``config.schema.Limits``
where a job is made). Pillow-free, so plans and jobs can carry it without loading Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DecodeLimits(Protocol):
    """The limits a decode is held to; refusals name the limit and the value."""

    @property
    def max_pixels(self) -> int: ...  # per frame, as declared by the header

    @property
    def max_file_bytes(self) -> int: ...

    @property
    def max_frames(self) -> int: ...

    @property
    def formats(self) -> tuple[str, ...]: ...  # the decoder allowlist


@dataclass(frozen=True)
class FileLimits:
    """``DecodeLimits`` as plain data (picklable without pydantic)."""

    max_pixels: int
    max_file_bytes: int
    max_frames: int
    formats: tuple[str, ...]

    @classmethod
    def of(cls, limits: DecodeLimits) -> FileLimits:
        return cls(
            int(limits.max_pixels),
            int(limits.max_file_bytes),
            int(limits.max_frames),
            tuple(limits.formats),
        )
