"""Desktop notifications for failures and for the end of a large batch, rate-limited.

``daemon.notify`` in the config: ``errors`` (failures only), ``all`` (failures and a summary
at the end of each batch of ``large_batch`` files or more) or ``off``.

The ``Batcher`` decides what to say and when; it is pure, and the clock is passed in. A
failure waits ``gather`` seconds for siblings, then one notification sums them up; the next
one comes ``interval`` seconds later at the earliest, again summing up everything since. A
batch ends when no file has finished for ``quiet`` seconds; with ``all``, failures within a
batch wait for its summary (for ``interval`` at most). So a 1,000-file drop gives one summary
(``all``) or at most one failure note a minute (``errors``), never 1,000 pop-ups.

Sending: the freedesktop ``org.freedesktop.Notifications`` service on the session bus,
through jeepney (pure Python) when it is installed, else the ``notify-send`` program, else
nothing. Only Unix-socket bus addresses are used. No notification service is not an error:
it is said once in the log at info level.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

APP_NAME = "amberpicd"
GATHER = 2.0  # seconds a first failure waits for others that come with it
INTERVAL = 60.0  # seconds between two failure notifications at least
QUIET = 5.0  # seconds without a finished file that end a batch
LARGE_BATCH = 10  # files in a batch that earn an end-of-batch summary (notify: all)
LISTED = 3  # errors quoted in one notification
SEND_TIMEOUT = 3.0


@dataclass(frozen=True)
class Note:
    summary: str
    body: str
    urgency: str = "normal"  # low | normal | critical
    kind: str = "failures"  # a new note replaces the on-screen one of the same kind


class Batcher:
    """What to notify, and when. Feed it with ``add``; ask ``due(now)`` at ``deadline()``."""

    def __init__(
        self,
        mode: str = "errors",
        *,
        gather: float = GATHER,
        interval: float = INTERVAL,
        quiet: float = QUIET,
        large_batch: int = LARGE_BATCH,
    ) -> None:
        self.mode = mode
        self.gather, self.interval, self.quiet = gather, interval, quiet
        self.large_batch = large_batch
        self._last_failure_note = float("-inf")
        self._unsent: list[str] = []  # failures not notified yet
        self._unsent_since: float | None = None
        self._batch: Counter[str] = Counter()
        self._batch_failures: list[str] = []
        self._batch_start: float | None = None
        self._batch_last: float | None = None  # when the current batch's last file finished

    def _forget_batch(self) -> None:
        self._batch = Counter()
        self._batch_failures = []
        self._batch_start = self._batch_last = None

    def add(self, status: str, error: str | None, now: float) -> None:
        """One file finished with ``status`` (done, failed, skipped, unmatched)."""
        if self.mode == "off":
            return
        self._batch[status] += 1
        if self._batch_start is None:
            self._batch_start = now
        self._batch_last = now
        if status == "failed":
            message = error or "a file failed"
            self._batch_failures.append(message)
            self._unsent.append(message)
            if self._unsent_since is None:
                self._unsent_since = now

    def _failures_due_at(self) -> float | None:
        if self._unsent_since is None:
            return None
        due = max(self._unsent_since + self.gather, self._last_failure_note + self.interval)
        if self.mode == "all" and self._batch_start is not None:
            due = max(due, self._batch_start + self.interval)  # the summary may come first
        return due

    def deadline(self) -> float | None:
        """When ``due`` may next have something to say; None: not until the next ``add``."""
        times = [t for t in (self._failures_due_at(),) if t is not None]
        if self._batch_last is not None:
            times.append(self._batch_last + self.quiet)
        return min(times) if times else None

    def due(self, now: float) -> list[Note]:
        """The notes to show now (usually none)."""
        if self.mode == "off":  # switched off by a reload: drop what was pending
            self._unsent, self._unsent_since = [], None
            self._forget_batch()
            return []
        notes: list[Note] = []
        if self._batch_last is not None and now >= self._batch_last + self.quiet:
            total = sum(self._batch.values())
            if self.mode == "all" and total >= self.large_batch:
                notes.append(self._batch_note(total))
                if self._unsent:  # the summary lists them: no second note for the same files
                    self._unsent, self._unsent_since = [], None
                    self._last_failure_note = now
            self._forget_batch()
        due_at = self._failures_due_at()
        if due_at is not None and now >= due_at:
            notes.append(self._failure_note(self._unsent))
            self._unsent, self._unsent_since = [], None
            self._last_failure_note = now
        return notes

    def flush(self) -> list[Note]:
        """Failures not yet notified, at once (the daemon is stopping)."""
        unsent, self._unsent, self._unsent_since = self._unsent, [], None
        return [self._failure_note(unsent)] if unsent and self.mode != "off" else []

    @staticmethod
    def _failure_note(errors: list[str]) -> Note:
        if len(errors) == 1:
            return Note(f"{APP_NAME}: a file failed", errors[0])
        return Note(f"{APP_NAME}: {len(errors)} files failed", _listing(errors))

    def _batch_note(self, total: int) -> Note:
        counts = self._batch
        parts = [f"{counts['done']} done"]
        if counts["failed"]:
            parts.append(f"{counts['failed']} failed")
        other = total - counts["done"] - counts["failed"]
        if other:
            parts.append(f"{other} skipped")
        body = ", ".join(parts)
        if self._batch_failures:
            body += "\n" + _listing(self._batch_failures)
        return Note(f"{APP_NAME}: processed {total} files", body, urgency="low", kind="batch")


def _listing(errors: list[str]) -> str:
    lines = errors[:LISTED]
    if len(errors) > LISTED:
        lines.append(f"and {len(errors) - LISTED} more")
    lines.append("See: amberpicd history --failed")
    return "\n".join(lines)


# -- senders -------------------------------------------------------------------------------
class Sender(Protocol):
    name: str

    def send(self, note: Note) -> bool: ...

    def close(self) -> None: ...


def session_bus_address(env: Mapping[str, str] = os.environ) -> str | None:
    """The session bus's Unix address: ``DBUS_SESSION_BUS_ADDRESS``, else the systemd user
    bus at ``$XDG_RUNTIME_DIR/bus``; None if there is none (or only a non-Unix one)."""
    address = env.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        unix = [a for a in address.split(";") if a.startswith("unix:")]
        return ";".join(unix) or None
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and Path(runtime, "bus").is_socket():
        return f"unix:path={runtime}/bus"
    return None


_URGENCY = {"low": 0, "normal": 1, "critical": 2}


class DBusSender:
    """``org.freedesktop.Notifications.Notify`` over jeepney; one connection, kept open."""

    name = "D-Bus"

    def __init__(self, address: str) -> None:
        self.address = address
        self._conn = None
        self._replaces: dict[str, int] = {}

    def send(self, note: Note) -> bool:
        from jeepney import AuthenticationError, DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        target = DBusAddress(
            "/org/freedesktop/Notifications",
            bus_name="org.freedesktop.Notifications",
            interface="org.freedesktop.Notifications",
        )
        args = (
            APP_NAME,
            self._replaces.get(note.kind, 0),
            "",
            note.summary,
            note.body,
            [],
            {"urgency": ("y", _URGENCY[note.urgency]), "desktop-entry": ("s", APP_NAME)},
            -1,
        )
        message = new_method_call(target, "Notify", "susssasa{sv}i", args)
        for attempt in (1, 2):  # a bus restarted under us: reconnect once
            try:
                if self._conn is None:
                    self._conn = open_dbus_connection(bus=self.address, auth_timeout=SEND_TIMEOUT)
                reply = self._conn.send_and_get_reply(message, timeout=SEND_TIMEOUT)
                (self._replaces[note.kind],) = unwrap_msg(reply)
                return True
            except (OSError, TimeoutError, AuthenticationError) as exc:
                self.close()
                if attempt == 2:
                    log.debug("notification not sent: %s", exc)
            except DBusErrorResponse as exc:  # mostly: no notification service on the bus
                log.debug("notification not sent: %s", exc)
                return False
        return False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class NotifySendSender:
    """The ``notify-send`` program (libnotify)."""

    name = "notify-send"

    def __init__(self, program: str, address: str) -> None:
        self.program = program
        self.env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address}

    def send(self, note: Note) -> bool:
        command = [self.program, f"--app-name={APP_NAME}", f"--urgency={note.urgency}"]
        try:
            done = subprocess.run(
                [*command, "--", note.summary, note.body],
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=SEND_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("notify-send failed: %s", exc)
            return False
        if done.returncode != 0:
            log.debug("notify-send failed: %s", done.stderr.strip())
        return done.returncode == 0

    def close(self) -> None:
        pass


def find_sender(env: Mapping[str, str] = os.environ) -> Sender | None:
    """jeepney if importable, else notify-send if on PATH; None without either or a bus."""
    address = session_bus_address(env)
    if address is None:
        return None
    try:
        import jeepney  # noqa: F401
    except ImportError:
        program = shutil.which("notify-send", path=env.get("PATH"))
        return NotifySendSender(program, address) if program else None
    return DBusSender(address)


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
    ) -> None:
        self._mode = mode
        self._sender = sender
        self._env = env
        self._clock = clock
        self.batcher = batcher or Batcher()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._said_none = False

    def report(self, report) -> None:
        """One file finished (a ``commit.Report``: ``status`` and ``error`` are read)."""
        mode = self._mode()
        if mode == "off" and self._thread is None:
            return
        with self._cond:
            if self._closed:
                return
            self.batcher.mode = mode
            self.batcher.add(report.status, report.error, self._clock())
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
            self._sender = find_sender(self._env)
            if self._sender is None:
                log.info("notifications: no session bus or notify-send here; not notifying")
            else:
                log.info("notifications: sent over %s", self._sender.name)  # type: ignore[union-attr]
        if self._sender is None:
            return
        if not self._sender.send(note) and not self._said_none:  # type: ignore[union-attr]
            self._said_none = True
            log.info("notifications: no notification service answers; not notifying")
