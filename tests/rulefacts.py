"""Facts of a made-up file, for testing rules without decoding anything."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from amberpicd.rules.facts import Facts


def facts(**kw: object) -> Facts:
    """A 4000x3000, 2 MB, upright JPEG named IMG_1.JPG; keywords override any field."""
    base: dict[str, object] = dict(
        path=Path("/in/IMG_1.JPG"),
        size_bytes=2_000_000,
        format="jpeg",
        width=4000,
        height=3000,
        frames=1,
        orientation=1,
        date=datetime(2024, 1, 1),
        content_hash="0" * 64,
    )
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]
