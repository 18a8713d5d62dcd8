"""The tray icon: pystray draws what ``tray.menu`` describes and runs its actions.

Two homes, one class: in the daemon (``DesktopSession`` runs ``TrayApp(InProcess(handle))``
on a thread of its own) or as ``amberpicd tray`` (``TrayApp(OverSocket(path))`` on the main
thread). A poll thread (pystray's setup thread) asks for the status every ``POLL`` seconds,
or at once after a click, and redraws only what changed; clicks only queue their actions for
it, so the toolkit's loop never waits on the daemon.

``tray.backend`` picks pystray's backend; the log says which one runs and what the user
loses with it.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from amberpicd.desktop.notify import session_bus_address
from amberpicd.desktop.tray import icons
from amberpicd.desktop.tray.backend import NAME, load_backend, what_you_lose
from amberpicd.desktop.tray.menu import (
    Action,
    CloseTray,
    Command,
    EditConfig,
    Entry,
    Item,
    OpenPath,
    Separator,
    build_menu,
    icon_state,
    tooltip,
)
from amberpicd.errors import AmberpicError, ControlError

log = logging.getLogger("amberpicd.desktop.tray")

POLL = 1.0  # seconds between two status reads
ICON_SIZE = 64  # drawn at this size until the tray says which size it shows


# -- where the status comes from -----------------------------------------------------------
class Source(Protocol):
    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send a control command; ControlError when no daemon answers."""
        ...


class InProcess:
    """The daemon's own tray: commands go straight to the daemon's handler."""

    def __init__(self, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.handle = handle

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        return self.handle({**args, "cmd": cmd})


class OverSocket:
    """``amberpicd tray``: commands go over the control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        from amberpicd.daemon.control import request

        return request(self.path, cmd, **args)


# -- the app ------------------------------------------------------------------------------------
_STOP = object()


class TrayApp:
    """The tray icon for one ``Source``. ``run()`` blocks until ``stop()`` (or Close tray)."""

    def __init__(
        self,
        source: Source,
        *,
        standalone: bool,
        env: Mapping[str, str] = os.environ,
        poll: float = POLL,
    ) -> None:
        self.source = source
        self.standalone = standalone
        self.env = env
        self.poll = poll
        self.backend: str | None = None
        self._actions: queue.Queue[object] = queue.Queue()
        self._icon: Any = None
        self._pystray: Any = None
        self._size = ICON_SIZE
        self._shown: dict[str, object] = {}
        self._stopped = threading.Event()
        self._said_offline = False

    # -- life ---------------------------------------------------------------------------
    def run(self) -> bool:
        """Show the icon until stopped. False (and a log line) when no icon could be shown."""
        if self._stopped.is_set():
            return False
        try:
            icon_class, self._pystray, self.backend, found = load_backend(self.env)
        except ImportError as exc:
            log.warning("no tray icon: %s", exc)
            return False
        lose = what_you_lose(self.backend, found)
        log.info("tray icon: %s backend; what you lose with it: %s", self.backend, lose)
        status = self._status()
        try:
            self._icon = icon_class(
                NAME, icons.render(icon_state(status), self._size), tooltip(status)
            )
            self._icon.size_changed = self._resized
            self._show(status)
            if self._stopped.is_set():
                return False
            self._icon.run(setup=self._poll_loop)
        except Exception as exc:
            hint = ""
            if self.backend != "xorg" and session_bus_address(self.env) is None:
                hint = " (pystray's GTK backends need a D-Bus session bus, and there is none)"
            log.error("tray icon failed (%s backend): %s%s", self.backend, exc, hint)
            return False
        return True

    def stop(self) -> None:
        """Remove the icon; safe from any thread, before, during or after ``run``."""
        self._stopped.set()
        self._actions.put(_STOP)
        if self._icon is not None:
            self._icon.stop()

    # -- the poll thread -------------------------------------------------------------------
    def _poll_loop(self, icon: Any) -> None:
        icon.visible = True
        while not self._stopped.is_set():
            try:
                job = self._actions.get(timeout=self.poll)
            except queue.Empty:
                job = None
            if job is _STOP:
                break
            if job is not None:
                self._perform(job)  # type: ignore[arg-type]
                if self._stopped.is_set():
                    break
            self._show(self._status())
        icon.stop()  # also when stop() came before the toolkit's loop ran: end it now

    def _status(self) -> dict[str, Any] | None:
        try:
            response = self.source.call("status")
        except ControlError as exc:
            if not self._said_offline:
                log.info("tray: %s", exc)
            self._said_offline = True
            return None
        except Exception:
            log.exception("tray: cannot read the daemon's status")
            return None
        self._said_offline = False
        return response if response.get("ok") else None

    def _show(self, status: dict[str, Any] | None) -> None:
        """Redraw what differs from what is shown."""
        icon = self._icon
        look = (icon_state(status), self._size)
        if self._shown.get("look") != look:
            icon.icon = icons.render(*look)
            self._shown["look"] = look
        entries = build_menu(status, standalone=self.standalone, home=self.env.get("HOME"))
        if self._shown.get("menu") != entries:
            icon.menu = self._pystray.Menu(*self._native(entries))
            self._shown["menu"] = entries
        icon.title = tooltip(status)  # last: once it shows, so do the menu and icon before it

    def _resized(self, size: int) -> None:
        if size != self._size:
            self._size = size
            self._actions.put(None)  # redraw from the poll thread

    def _native(self, entries: tuple[Entry, ...]) -> list[Any]:
        pystray = self._pystray
        native: list[Any] = []
        for entry in entries:
            if isinstance(entry, Separator):
                native.append(pystray.Menu.SEPARATOR)
            elif entry.submenu:
                sub = pystray.Menu(*self._native(entry.submenu))
                native.append(pystray.MenuItem(entry.text, sub, enabled=entry.enabled))
            else:
                native.append(self._native_item(entry))
        return native

    def _native_item(self, item: Item) -> Any:
        def clicked(icon: Any, menu_item: Any) -> None:
            self._actions.put(item.actions)  # performed on the poll thread, not the GUI's

        checked = None if item.checked is None else (lambda _i, c=item.checked: c)
        return self._pystray.MenuItem(
            item.text, clicked, checked=checked, enabled=item.enabled, default=item.default
        )

    # -- actions -------------------------------------------------------------------------
    def _perform(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            try:
                if isinstance(action, Command):
                    response = self.source.call(action.cmd, **action.kwargs)
                    if not response.get("ok"):
                        log.warning("tray: %s: %s", action.cmd, response.get("error"))
                elif isinstance(action, OpenPath):
                    open_path(action.path, self.env)
                elif isinstance(action, EditConfig):
                    edit_config(action.path, self.env)
                elif isinstance(action, CloseTray):
                    self.stop()
            except AmberpicError as exc:
                log.warning("tray: %s", exc)


# -- opening things ----------------------------------------------------------------------------
def _spawn(argv: list[str]) -> None:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not ours to stop: the opened app outlives the tray
    )
    threading.Thread(target=proc.wait, name="amberpicd-reap", daemon=True).start()


def open_path(path: str, env: Mapping[str, str] = os.environ) -> bool:
    """Open a folder or file with ``xdg-open``; a vanished path opens its nearest parent."""
    target = Path(path)
    while not target.exists() and target.parent != target:
        target = target.parent
    program = shutil.which("xdg-open", path=env.get("PATH"))
    if program is None:
        log.warning("cannot open %s: xdg-open is not installed (Debian: xdg-utils)", target)
        return False
    _spawn([program, str(target)])
    return True


def edit_config(path: str | None, env: Mapping[str, str] = os.environ) -> bool:
    """Open the config in the desktop's editor for it (``xdg-open``), else ``$VISUAL`` or
    ``$EDITOR``; with no config file yet, write the commented starter first."""
    if path is None:
        from amberpicd.config.loader import write_starter
        from amberpicd.paths import config_file

        target = config_file(env)
        if not target.exists():
            write_starter(target)
            log.info("tray: wrote a starter config at %s", target)
    else:
        target = Path(path)
    if shutil.which("xdg-open", path=env.get("PATH")):
        return open_path(str(target), env)
    editor = env.get("VISUAL") or env.get("EDITOR")
    if editor:
        _spawn([*shlex.split(editor), str(target)])
        return True
    log.warning("cannot open %s: neither xdg-open nor $VISUAL/$EDITOR is there", target)
    return False
