"""Whether the journal can be written now, and what waits until it can.

A journal that cannot be written (disk full, deleted or replaced) never loses a file: the
path waits in ``held`` (in front of the queue) and is taken again after JOURNAL_RETRY seconds,
then less and less often (doubling up to JOURNAL_RETRY_MAX: a full disk may stay full for
hours), and the error is ``error`` (status shows it) until a write succeeds. Jobs whose
records could not be written are ``orphans``, superseded once it heals. ``watch`` notices a
journal file deleted or replaced under us and opens a new one once no job is in flight.
Shared by the dispatch and commit stages (thread-safe); touches the journal only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from amberpicd.errors import JournalError, JournalGone
from amberpicd.journal import Journal

log = logging.getLogger("amberpicd")
JOURNAL_RETRY = 2.0  # seconds before the first new attempt to write a journal that failed
JOURNAL_RETRY_MAX = 10.0  # seconds: the longest wait between two attempts
JOURNAL_CHECK = 2.0  # seconds between checks that the journal file is still ours


class JournalHealth:
    def __init__(self, journal: Journal, on_lost: Callable[[str], None] = lambda problem: None):
        self.journal = journal
        self.on_lost = on_lost
        self.error: str | None = None  # the journal cannot be written now: why
        self.held: deque[Path] = deque()  # taken, but the journal could not record them
        self._orphans: list[int] = []  # their jobs, left unfinished: superseded once it heals
        self._lock = threading.RLock()
        self._retry_at = 0.0
        self._delay = JOURNAL_RETRY  # the wait before the next attempt, doubling
        self._checked = 0.0
        self._writes_at_error = 0

    def may_write(self) -> bool:
        """False while a failed journal is not due for another try."""
        return self.error is None or time.monotonic() >= self._retry_at

    def failed(self, exc: Exception, orphan: int | None = None) -> None:
        message = str(exc)
        with self._lock:
            if orphan is not None:
                self._orphans.append(orphan)
            again = self.error is not None
            self._delay = min(2 * self._delay, JOURNAL_RETRY_MAX) if again else JOURNAL_RETRY
            self._retry_at = time.monotonic() + self._delay
            if self.error is None:
                self._writes_at_error = self.journal.writes
                log.error(
                    "journal cannot be written: %s; files wait in the queue until it can", message
                )
            self.error = message

    def ok(self) -> None:
        """A step went through: if it wrote, the journal has healed."""
        with self._lock:
            if self.error is not None and self.journal.writes > self._writes_at_error:
                log.info("the journal can be written again; going on with the queue")
                self.error = None
            while self._orphans and self.error is None:
                try:  # a crash before this: recovery finishes them (their files wait no more)
                    self.journal.supersede(self._orphans[0], "its records could not be written")
                except JournalGone:
                    return
                except JournalError:
                    pass  # e.g. no such job in a new journal
                self._orphans.pop(0)

    def watch(self, idle: Callable[[], bool]) -> None:
        """Every JOURNAL_CHECK seconds: is the journal file still ours? If not, open a new
        one once ``idle()`` (no job in flight: their records went with the old file)."""
        now = time.monotonic()
        if now - self._checked < JOURNAL_CHECK:
            return
        self._checked = now
        problem = self.journal.check()
        if problem is None:
            return
        with self._lock:
            if self.error != problem:
                log.error("%s: its history is lost; starting a new journal", problem)
                self.error = problem
                self._retry_at = now + JOURNAL_RETRY
            if not idle():
                return  # they end first (and are redone)
            try:
                self.journal.reopen()
            except JournalError as exc:
                self.failed(exc)
                return
            log.error(
                "new journal at %s: files still in the inboxes are processed again; outputs"
                " already written with the same content are recognised, not written twice",
                self.journal.path,
            )
            self.error = None
            self._orphans.clear()  # their records went with the old file
        self.on_lost(problem)
