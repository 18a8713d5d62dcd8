"""What is known about an input file before its pixels are decoded: what rules match on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Facts:
    """Header facts of one input file. Width and height are upright (orientation applied)."""

    path: Path
    size_bytes: int
    format: str
    width: int
    height: int
    frames: int
    orientation: int
    date: datetime  # EXIF DateTimeOriginal, else the file's mtime
    content_hash: str  # hex sha256 of the file's bytes
    date_source: str = "file modification time"  # or the EXIF tag ``date`` was read from

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def shape(self) -> str:
        if self.width == self.height:
            return "square"
        return "landscape" if self.width > self.height else "portrait"
