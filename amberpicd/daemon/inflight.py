"""The jobs in flight between the dispatch and commit stages: one job per path.

Dispatch adds a job when it submits it; commit releases it once the job is recorded. A path
taken again while its job runs (its content may have changed since) is remembered and put back
in the queue when the job ends. Thread-safe: dispatch, commit and the watcher's rescans (which
pass over paths in flight) share it. Touches nothing on disk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from amberpicd.config.schema import Watch
from amberpicd.engine.commit import OriginalsPolicy
from amberpicd.engine.pipeline import FileJob


@dataclass
class Running:
    job_id: int
    job: FileJob
    originals: OriginalsPolicy
    watch: Watch
    key: object = None  # unused; kept for callers of resubmit


class InFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._paths: set[Path] = set()  # sources with a job in flight
        self._again: set[Path] = set()  # taken while in flight: taken again when it ends

    def add(self, item: Running) -> None:
        with self._lock:
            self._running[item.job_id] = item
            self._paths.add(item.job.path)

    def holds(self, path: Path) -> bool:
        with self._lock:
            return path in self._paths

    def again_if_held(self, path: Path) -> bool:
        """True when ``path`` has a job in flight: it is taken again once that job ends."""
        with self._lock:
            if path in self._paths:
                self._again.add(path)
                return True
            return False

    def again(self, path: Path) -> None:
        with self._lock:
            self._again.add(path)

    def release(self, item: Running) -> bool:
        """The job ended; True when its path must be taken again."""
        with self._lock:
            self._running.pop(item.job_id, None)
            self._paths.discard(item.job.path)
            if item.job.path in self._again:
                self._again.discard(item.job.path)
                return True
            return False

    def items(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)

    def __bool__(self) -> bool:
        return len(self) > 0
