"""The queue between the watcher and the dispatcher: ordered, without duplicates.

Paths only (no image data), so 10,000 files dropped at once cost a few megabytes; the
dispatcher keeps the number of jobs in flight bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path


class PendingQueue:
    def __init__(self) -> None:
        self._items: OrderedDict[Path, None] = OrderedDict()
        self._lock = threading.Lock()
        self.changed = threading.Event()  # set on put; the dispatcher waits on it

    def put(self, path: Path) -> None:
        with self._lock:
            self._items[path] = None
        self.changed.set()

    def pop(self) -> Path | None:
        with self._lock:
            if not self._items:
                return None
            path, _ = self._items.popitem(last=False)
            return path

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
