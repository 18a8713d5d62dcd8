"""What the user switched on or off (pause, disabled inboxes), kept across restarts."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from amberpicd.errors import error_text
from amberpicd.output.writer import fsync_dir

log = logging.getLogger(__name__)


@dataclass
class Toggles:
    paused: bool = False
    disabled: set[str] = field(default_factory=set)  # inbox paths switched off by the user

    @classmethod
    def load(cls, path: Path) -> Toggles:
        try:
            data = json.loads(path.read_text())
            return cls(bool(data.get("paused", False)), set(map(str, data.get("disabled", []))))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); starting with defaults", path.name, error_text(exc))
            return cls()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps({"paused": self.paused, "disabled": sorted(self.disabled)}))
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
        fsync_dir(path.parent)
