"""The daemon's one result sink: every finished file's ``Report`` is published here once.

``Results.publish(report)`` calls each subscriber in the order they subscribed, on the
publisher's thread (the commit stage's), so subscribers must be quick: append, log, hand to
a thread of their own. One failing subscriber is logged and never stops the others. The
daemon subscribes, in this order: ``Recent.add`` (the status's "recent" list, which the tray
and ``amberpicd status`` read), ``log_line`` (the log), its systemd status line, and the
desktop session's notifications. Touches nothing but the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from amberpicd.errors import printable

if TYPE_CHECKING:
    from amberpicd.engine.commit import Report

log = logging.getLogger("amberpicd")

Subscriber = Callable[["Report"], None]


class Results:
    """A small publish/subscribe of finished files' reports."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, report: Report) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(report)
            except Exception:  # a subscriber's bug must not lose the others' view of a file
                log.exception("result subscriber %r failed", subscriber)


def log_line(report: Report) -> None:
    """The log's line for a finished file."""
    if report.status == "failed":
        log.error("%s", report.error)
    elif report.status == "done":
        log.info(
            "%s → %s",
            printable(report.source.name),
            printable(", ".join(p.name for p in report.outputs)),
        )
    elif report.error:  # skipped: not an image, or an empty file (not failures)
        log.info("%s", report.error)
    if report.note:  # e.g. the original kept because an output was skipped
        log.warning("%s", report.note)


class Recent:
    """The last files finished, and how many failed since the user last looked."""

    def __init__(self, keep: int = 50) -> None:
        self._entries: deque[dict] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.failures_unseen = 0

    def add(self, report: Report) -> None:
        entry = {
            "source": str(report.source),
            "status": report.status,
            "outputs": [str(p) for p in report.outputs],
            "error": report.error,
            "time": time.time(),
        }
        with self._lock:
            self._entries.append(entry)
            if report.status == "failed":
                self.failures_unseen += 1

    def append(self, entry: dict) -> None:
        """A ready-made entry (e.g. ``undone``, from the undo command)."""
        with self._lock:
            self._entries.append(entry)

    def last(self, n: int) -> list[dict]:
        with self._lock:
            return list(self._entries)[-n:]

    def seen(self) -> None:
        with self._lock:
            self.failures_unseen = 0
