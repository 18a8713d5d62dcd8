"""The daemon's desktop side: its tray icon (when there is a display) and notifications.

The daemon makes one ``DesktopSession`` from a narrow interface: ``handle`` (the daemon's
command handler, which the tray calls for status, pause, resume...), ``notify_mode`` and
``tray_configured`` (read from the running config), and whether ``--no-tray`` was given.
``start()`` once the inboxes are watched, ``report()`` for each finished file (subscribe it to
the daemon's results), ``stop()`` on the way out. Nothing here knows the daemon's classes.

The tray runs on a thread of its own (the toolkit's loop; GTK is happy off the main thread as
long as it stays on one), so the main thread keeps the signals and the systemd watchdog.
pystray and Pillow are imported on that thread only, and only when a tray will really be shown.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from amberpicd.desktop.notify import Notifier

log = logging.getLogger("amberpicd")
STOP_TIMEOUT = 3.0  # seconds the tray may take to go when the daemon stops

Handle = Callable[[dict[str, Any]], dict[str, Any]]


class Finished(Protocol):
    """What a notification reads of a finished file's report."""

    status: str
    error: str | None


def why_no_tray(env: Mapping[str, str], *, flag: bool, configured: bool) -> str | None:
    """Why the daemon runs without a tray icon, or None when it should show one."""
    if not flag:
        return "started with --no-tray"
    if not configured:
        return "daemon.tray is false in the config"
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset); `amberpicd tray` adds one later"
    return None


class DesktopSession:
    def __init__(
        self,
        handle: Handle,
        *,
        notify_mode: Callable[[], str],
        tray_configured: Callable[[], bool],
        tray: bool = True,
        env: Mapping[str, str] = os.environ,
    ):
        self.handle = handle
        self.env = env
        self.want_tray = tray
        self.tray_configured = tray_configured
        self.notifier = Notifier(notify_mode, env=env)
        self.tray = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        reason = why_no_tray(self.env, flag=self.want_tray, configured=self.tray_configured())
        if reason:
            log.info("no tray icon: %s", reason)
            return
        from amberpicd.desktop.tray.app import InProcess, TrayApp

        self.tray = TrayApp(InProcess(self.handle), standalone=False, env=self.env)
        self._thread = threading.Thread(target=self.tray.run, name="amberpicd-tray", daemon=True)
        self._thread.start()

    def report(self, report: Finished) -> None:
        self.notifier.report(report)

    def stop(self) -> None:
        if self.tray is not None and self._thread is not None:
            # pystray's stop can block on its toolkit's loop (the xorg backend waits for it
            # without a timeout): stop from a helper thread and wait a bounded time.
            threading.Thread(target=self.tray.stop, name="amberpicd-tray-stop", daemon=True).start()
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                log.warning("the tray icon did not go within %g s; exiting anyway", STOP_TIMEOUT)
        self.notifier.close()
