"""When is a file dropped into an inbox complete? A pure, clock-injected state machine.

The watcher feeds every filesystem event for a file into :class:`Settler` and asks it, at
the deadlines it names, which files are ready. A file is *ready* (complete, safe to read) when:

a. **Closed after a write.** The writer closed it (inotify ``IN_CLOSE_WRITE``, watchdog's
   ``FileClosedEvent``) after we saw it created or modified. A close with no write before
   it (a program that opened the file read-write and changed nothing) is not a write.
b. **Moved in.** It was renamed or moved into the inbox under a name that is not ignored:
   browsers write ``x.jpg.part``/``x.jpg.crdownload`` and rename it when done, file managers
   ``mv`` files in, sync tools rename a hidden temp file. A rename *within* the inbox between
   two watched names carries the file's state over: renaming a file that was already reported
   does not report it again.
c. **Quiet and stable (fallback).** It was created or modified, then saw no event for
   ``quiet`` seconds, and its size and mtime did not change between two stats ``quiet``
   apart. This covers files that never give a clean close: hard links, ``mv`` seen only as a
   creation, copies whose close we missed. So a file taken by this rule is ready no sooner than
   twice ``quiet`` after its last event.

And these hold whatever the rule:

* **An open writer blocks the fallback.** A file that had an Opened event without a Closed
  after it is still being written: rule (c) does not apply to it until it closes (a writer
  pausing longer than ``quiet`` is not taken early). Inotify cannot tell readers from writers
  and may merge repeated opens, so any Closed (with or without a write) ends the open state.
  A writer whose Opened event was never seen (it opened the file before the watch began, or
  the events were lost in a queue overflow) can still be taken early by (c) if it pauses
  longer than ``quiet``.
* **A write restarts the cycle.** A Modified or Created event after a Closed (a writer that
  reopens the file) cancels the pending readiness: the file waits for its next close, or for
  the fallback.
* **Zero-byte files are never ready.** Firefox first creates an empty placeholder under the
  final name and later renames ``.part`` over it; the empty file waits (logged at debug) until
  another event says something changed.
* **Only regular files.** Symlinks, FIFOs, sockets and devices are dropped (``lstat``, never
  opened); so is a file that vanished before its stat.
* **Deleted drops the path.** A file that is deleted or moved out is forgotten.
* **Each readiness is reported once.** :meth:`Settler.due` returns a file and forgets it;
  only new events can bring it back.

All stats happen in :meth:`Settler.due`, never in :meth:`Settler.observe`, so feeding events
is cheap; ``due`` is called by one thread at the deadlines :meth:`Settler.next_deadline` gives,
and there is no deadline (no wake-up) while nothing is pending.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat as stat_mod
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args

log = logging.getLogger(__name__)

Kind = Literal[
    "created",  # a new file (or one moved in that we cannot tell from a new one)
    "opened",  # someone opened it (reader or writer: inotify does not say)
    "modified",  # its content changed
    "closed",  # a file opened for writing was closed (IN_CLOSE_WRITE)
    "closed_nowrite",  # a file opened read-only was closed
    "moved_in",  # renamed or moved into the inbox under a watched name
    "deleted",  # deleted, or moved out of the inbox
    "found",  # seen by a scan: like "created", unless the file is already tracked
]
KINDS: frozenset[str] = frozenset(get_args(Kind))


class StatResult(Protocol):
    """The part of ``os.stat_result`` the settler reads."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...


@dataclass
class _Entry:
    written: bool = False  # content arrived since the file was last reported
    open: bool = False  # an Opened event with no Closed after it
    signalled: bool = False  # closed after a write, or moved in: ready once it has bytes
    snapshot: tuple[int, int] | None = None  # (size, mtime_ns) of the fallback's first stat
    deadline: float | None = None
    seq: int = 0  # matches the heap item that carries the current deadline


class Settler:
    """Decides when files are complete. Not thread-safe: the caller serialises calls."""

    def __init__(
        self,
        quiet: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        stat: Callable[[Path], StatResult] = os.lstat,
    ) -> None:
        if quiet <= 0:
            raise ValueError(f"quiet must be positive, not {quiet}")
        self.quiet = quiet
        self._clock = clock
        self._stat = stat
        self._entries: dict[Path, _Entry] = {}
        # Lazy-deletion heap of (deadline, seq, path); stale items are skipped on pop.
        self._heap: list[tuple[float, int, Path]] = []
        self._seq = 0

    def __len__(self) -> int:
        """How many files are tracked (pending, open, or waiting with zero bytes)."""
        return len(self._entries)

    def pending(self) -> int:
        """How many files are being written or settling: those tracked, less the zero-byte ones
        parked until a new event (which may never come: an empty file left in an inbox must
        not look like work in progress forever)."""
        return sum(1 for e in self._entries.values() if e.deadline is not None or e.open)

    def empty(self) -> list[Path]:
        """The zero-byte files parked until a new event, which ``pending`` leaves out (the
        status shows them, so that an empty file is not waiting unseen)."""
        return sorted(p for p, e in self._entries.items() if e.deadline is None and not e.open)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def observe(self, path: Path, kind: Kind, now: float | None = None) -> None:
        """Record one event for ``path``."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        now = self._clock() if now is None else now
        entry = self._entries.get(path)

        if kind == "deleted":
            self._entries.pop(path, None)
            return
        if kind == "found":
            if entry is None:
                entry = self._entries[path] = _Entry(written=True)
                self._set_deadline(path, entry, now + self.quiet)
            return
        if kind == "opened":
            if entry is None:
                entry = self._entries[path] = _Entry()
            entry.open = True
            entry.snapshot = None
            self._set_deadline(path, entry, None)
            return
        if kind == "closed_nowrite" or (kind == "closed" and (entry is None or not entry.written)):
            # A reader finished, or a writer closed without writing: not a completion.
            if entry is None:
                return
            entry.open = False
            if not entry.written:
                del self._entries[path]
            elif entry.signalled:
                # A reader (a thumbnailer, a file manager) peeked at a finished file:
                # its readiness, suspended by the open, stands again.
                self._set_deadline(path, entry, now)
            else:
                self._set_deadline(path, entry, now + self.quiet)  # resume the fallback
            return

        if entry is None:
            entry = self._entries[path] = _Entry()
        entry.written = True
        entry.snapshot = None
        if kind in ("closed", "moved_in"):
            entry.open = False
            entry.signalled = True
            self._set_deadline(path, entry, now)
            return
        # created / modified: a (re)start of writing.
        if kind == "created":
            entry.open = False  # a new inode: any open seen before belonged to the old one
        entry.signalled = False
        self._set_deadline(path, entry, None if entry.open else now + self.quiet)

    def renamed(self, src: Path, dest: Path, now: float | None = None) -> None:
        """``src`` was renamed to ``dest``, both watched names: ``dest`` inherits the state.

        An untracked ``src`` (already reported, or older than the watch) reports nothing.
        """
        now = self._clock() if now is None else now
        self._entries.pop(dest, None)
        entry = self._entries.pop(src, None)
        if entry is None:
            return
        self._entries[dest] = entry
        self._set_deadline(path=dest, entry=entry, when=entry.deadline)

    def forget(self, folder: Path) -> None:
        """Drop every file at or below ``folder`` (an inbox that vanished or is unwatched)."""
        for path in [p for p in self._entries if p == folder or p.is_relative_to(folder)]:
            del self._entries[path]

    def events_lost(self, now: float | None = None) -> None:
        """Events were dropped (queue overflow): open states and snapshots are unreliable.

        Every tracked file falls back to the quiet-and-stable rule (c); files only ever opened
        are forgotten.
        """
        now = self._clock() if now is None else now
        for path, entry in list(self._entries.items()):
            entry.open = False
            if not entry.written:
                del self._entries[path]
            elif not entry.signalled:
                entry.snapshot = None
                self._set_deadline(path, entry, now + self.quiet)

    def next_deadline(self) -> float | None:
        """When :meth:`due` should next be called; None while nothing is waiting for time."""
        heap = self._heap
        while heap:
            when, seq, path = heap[0]
            entry = self._entries.get(path)
            if entry is not None and entry.seq == seq and entry.deadline == when:
                return when
            heapq.heappop(heap)
        return None

    def due(self, now: float | None = None) -> list[Path]:
        """The files that became ready by ``now``; each is returned once, then forgotten."""
        now = self._clock() if now is None else now
        ready: list[Path] = []
        while (when := self.next_deadline()) is not None and when <= now:
            _, _, path = heapq.heappop(self._heap)
            entry = self._entries[path]
            entry.deadline = None
            if self._check(path, entry, now):
                ready.append(path)
                del self._entries[path]
        return ready

    def _check(self, path: Path, entry: _Entry, now: float) -> bool:
        try:
            st = self._stat(path)
        except OSError as exc:
            log.debug("%s: gone before it settled (%s)", path, exc.strerror or exc)
            del self._entries[path]
            return False
        if not stat_mod.S_ISREG(st.st_mode):
            log.debug("%s: not a regular file, skipped", path)
            del self._entries[path]
            return False
        if entry.signalled:
            return self._nonempty(path, entry, st)
        snapshot = (st.st_size, st.st_mtime_ns)
        if entry.snapshot == snapshot:
            return self._nonempty(path, entry, st)
        # First stat, or still changing: look again after another quiet period.
        entry.snapshot = snapshot
        self._set_deadline(path, entry, now + self.quiet)
        return False

    def _nonempty(self, path: Path, entry: _Entry, st: StatResult) -> bool:
        if st.st_size > 0:
            return True
        # Parked with no deadline: only a new event (e.g. a rename over it) wakes it.
        log.debug("%s: zero bytes, waiting for content", path)
        entry.signalled = False
        entry.snapshot = None
        return False

    def _set_deadline(self, path: Path, entry: _Entry, when: float | None) -> None:
        entry.deadline = when
        self._seq += 1
        entry.seq = self._seq
        if when is not None:
            heapq.heappush(self._heap, (when, self._seq, path))
            if len(self._heap) > 2 * len(self._entries) + 64:
                self._compact()

    def _compact(self) -> None:
        # Stale items pile up when a file sees many events; rebuild from the live deadlines.
        self._heap = [
            (e.deadline, e.seq, p) for p, e in self._entries.items() if e.deadline is not None
        ]
        heapq.heapify(self._heap)
