"""How a note reaches the screen: the freedesktop ``org.freedesktop.Notifications`` service
on the session bus, through jeepney (pure Python) when it is installed, else the
``notify-send`` program, else nothing. Only Unix-socket bus addresses are used.

Over jeepney, a batch summary offers "Undo": the service's ``ActionInvoked`` signal, heard
from the service's owner only, hands the batch's done jobs to the daemon's undo.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from amberpicd.desktop.notes import APP_NAME, SEND_TIMEOUT, Note

log = logging.getLogger(__name__)


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


_PATH = "/org/freedesktop/Notifications"
_NAME = _IFACE = "org.freedesktop.Notifications"
UndoHandler = Callable[[tuple[int, ...]], None]  # the journal's job ids


class DBusSender:
    """``org.freedesktop.Notifications.Notify`` over jeepney; one connection, kept open.

    With ``on_undo``, a batch summary carries an "Undo" action; when the user clicks it, the
    service's ``ActionInvoked`` signal (heard on a second connection, from the service's
    owner only) hands that batch's done jobs to ``on_undo``, from the listener's thread.
    """

    name = "D-Bus"

    def __init__(self, address: str, on_undo: UndoHandler | None = None) -> None:
        self.address = address
        self.on_undo = on_undo
        self._conn = None
        self._replaces: dict[str, int] = {}
        self._undo: dict[int, tuple[int, ...]] = {}  # shown note's id -> what its Undo takes back
        self._lock = threading.Lock()
        self._signals = None  # the listener's own connection: jeepney's is not shared by threads
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    def send(self, note: Note) -> bool:
        from jeepney import AuthenticationError, DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        target = DBusAddress(_PATH, bus_name=_NAME, interface=_IFACE)
        undoable = bool(note.undo) and self.on_undo is not None
        if undoable and not self._listening():
            undoable = False  # no listener, no button that would do nothing
        args = (
            APP_NAME,
            self._replaces.get(note.kind, 0),
            "",
            note.summary,
            note.body,
            ["undo", "Undo"] if undoable else [],
            {"urgency": ("y", _URGENCY[note.urgency]), "desktop-entry": ("s", APP_NAME)},
            -1,
        )
        message = new_method_call(target, "Notify", "susssasa{sv}i", args)
        for attempt in (1, 2):  # a bus restarted under us: reconnect once
            try:
                if self._conn is None:
                    self._conn = open_dbus_connection(bus=self.address, auth_timeout=SEND_TIMEOUT)
                reply = self._conn.send_and_get_reply(message, timeout=SEND_TIMEOUT)
                (shown,) = unwrap_msg(reply)
                self._replaces[note.kind] = shown
                with self._lock:  # a replaced note's Undo goes with it
                    if undoable:
                        self._undo[shown] = note.undo
                    else:
                        self._undo.pop(shown, None)
                return True
            except (OSError, TimeoutError, AuthenticationError) as exc:
                self._close_sender()
                if attempt == 2:
                    log.debug("notification not sent: %s", exc)
            except DBusErrorResponse as exc:  # mostly: no notification service on the bus
                log.debug("notification not sent: %s", exc)
                return False
        return False

    def _listening(self) -> bool:
        """Hear the service's ActionInvoked and NotificationClosed; subscribed before the
        first note with a button is shown, so no click can come before we listen."""
        if self._listener is not None and self._listener.is_alive():
            return True
        from jeepney import AuthenticationError, MatchRule, message_bus
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import DBusErrorResponse

        try:
            conn = open_dbus_connection(bus=self.address, auth_timeout=SEND_TIMEOUT)
            for member in ("ActionInvoked", "NotificationClosed"):
                # sender: the name's owner only, so another program cannot click for the user
                rule = MatchRule(
                    type="signal", sender=_NAME, interface=_IFACE, member=member, path=_PATH
                )
                conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=SEND_TIMEOUT)
        except (OSError, TimeoutError, AuthenticationError, DBusErrorResponse) as exc:
            log.debug("notification actions unavailable: %s", exc)
            return False
        self._stop.clear()
        self._signals = conn
        self._listener = threading.Thread(
            target=self._receive, args=(conn,), name="amberpicd-notify-actions", daemon=True
        )
        self._listener.start()
        return True

    def _receive(self, conn) -> None:
        from jeepney import HeaderFields, MessageType

        while not self._stop.is_set():
            try:
                msg = conn.receive(timeout=0.5)
            except TimeoutError:
                continue
            except OSError:
                return
            if msg.header.message_type != MessageType.signal:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "ActionInvoked" and len(msg.body) == 2:
                shown, key = msg.body
                with self._lock:
                    paths = self._undo.pop(shown, None) if key == "undo" else None
                if paths and self.on_undo is not None:
                    try:
                        self.on_undo(paths)
                    except Exception:  # never down: a failed undo is logged by its handler
                        log.exception("notification: Undo failed")
            elif member == "NotificationClosed" and msg.body:
                with self._lock:
                    self._undo.pop(msg.body[0], None)

    def _close_sender(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._close_sender()
        self._stop.set()
        if self._listener is not None:
            self._listener.join(SEND_TIMEOUT)
            self._listener = None
        if self._signals is not None:
            self._signals.close()
            self._signals = None


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


def find_sender(
    env: Mapping[str, str] = os.environ, on_undo: UndoHandler | None = None
) -> Sender | None:
    """jeepney if importable, else notify-send if on PATH; None without either or a bus.
    Only jeepney offers the batch summary's Undo (notify-send would block for a click)."""
    address = session_bus_address(env)
    if address is None:
        return None
    try:
        import jeepney  # noqa: F401
    except ImportError:
        program = shutil.which("notify-send", path=env.get("PATH"))
        return NotifySendSender(program, address) if program else None
    return DBusSender(address, on_undo)
