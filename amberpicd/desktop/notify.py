"""Desktop notifications, the daemon's side: the ``Notifier`` takes each finished file's
report, asks the ``Batcher`` (notes.py) what to show and when, and shows it from its own
thread through a sender (senders.py), so a report never waits on the bus. No notification
service is not an error: it is said once in the log at info level.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

from amberpicd.desktop.notes import SEND_TIMEOUT, Batcher, Note
from amberpicd.desktop.senders import Sender, UndoHandler, find_sender

log = logging.getLogger(__name__)


# -- the daemon's side ---------------------------------------------------------------------
class Notifier:
    """Takes each finished file's report; shows what the Batcher decides, from its own thread.

    ``mode`` is read on every report, so a config reload takes effect at once. ``sender``
    defaults to ``find_sender(env)``, looked up at the first notification, not before.
    """

    _AUTO = object()

    def __init__(
        self,
        mode: Callable[[], str],
        *,
        sender: Sender | object | None = _AUTO,
        env: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
        batcher: Batcher | None = None,
        on_undo: UndoHandler | None = None,
    ) -> None:
        self._mode = mode
        self._on_undo = on_undo
        self._sender = sender
        self._env = env
        self._clock = clock
        self.batcher = batcher or Batcher()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._said_none = False

    def report(self, report) -> None:
        """One file finished (a ``commit.Report``: ``status``, ``error`` and ``job_id`` are
        read)."""
        mode = self._mode()
        if mode == "off" and self._thread is None:
            return
        with self._cond:
            if self._closed:
                return
            self.batcher.mode = mode
            job = getattr(report, "job_id", None)
            self.batcher.add(report.status, report.error, self._clock(), job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="amberpicd-notify", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def close(self, timeout: float = SEND_TIMEOUT) -> None:
        """Show failures not notified yet, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        sender = self._sender
        if sender is not self._AUTO and sender is not None:
            sender.close()  # type: ignore[union-attr]

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    deadline = self.batcher.deadline()
                    now = self._clock()
                    if deadline is not None and now >= deadline:
                        break
                    self._cond.wait(None if deadline is None else deadline - now)
                notes = self.batcher.flush() if self._closed else self.batcher.due(self._clock())
                closed = self._closed
            for note in notes:  # sent outside the lock: reports never wait on the bus
                self._send(note)
            if closed:
                return

    def _send(self, note: Note) -> None:
        if self._sender is self._AUTO:
            self._sender = find_sender(self._env, self._on_undo)
            if self._sender is None:
                log.info("notifications: no session bus or notify-send here; not notifying")
            else:
                log.info("notifications: sent over %s", self._sender.name)  # type: ignore[union-attr]
        if self._sender is None:
            return
        if not self._sender.send(note) and not self._said_none:  # type: ignore[union-attr]
            self._said_none = True
            log.info("notifications: no notification service answers; not notifying")
