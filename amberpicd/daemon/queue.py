"""The queue between settle and identify: ordered, without duplicates, with delayed re-entries.

Paths only (no image data), and one entry per file however often it is put, so 10,000 files
dropped at once cost a few megabytes: bounded by the files in the inboxes. The dispatch stage
keeps the number of jobs in flight bounded. ``put_later`` brings a path back after a delay (a
file that changed while a worker read it is looked at again once it has settled).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from pathlib import Path


class PendingQueue:
    def __init__(self) -> None:
        self._items: OrderedDict[Path, None] = OrderedDict()
        self._later: list[tuple[float, Path]] = []  # (monotonic time, path): put then
        self._lock = threading.Lock()
        self.changed = threading.Event()  # set on put; the dispatch stage waits on it

    def put(self, path: Path) -> None:
        with self._lock:
            self._items[path] = None
        self.changed.set()

    def put_later(self, path: Path, delay: float) -> None:
        with self._lock:
            heapq.heappush(self._later, (time.monotonic() + delay, path))
        self.changed.set()  # the dispatch stage's wait may have to end sooner

    def pop(self) -> Path | None:
        with self._lock:
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                self._items[heapq.heappop(self._later)[1]] = None
            if not self._items:
                return None
            path, _ = self._items.popitem(last=False)
            return path

    def next_later(self) -> float | None:
        """Seconds until the next delayed path is due (0 when one is), None when none waits."""
        with self._lock:
            return max(0.0, self._later[0][0] - time.monotonic()) if self._later else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
