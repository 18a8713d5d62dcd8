"""The daemon's desktop side: its tray icon (when there is a display) and notifications.

``Daemon`` owns one ``Desktop``: ``start()`` once the inboxes are watched, ``report()`` for
each finished file, ``stop()`` on the way out. The tray runs on a thread of its own (the
toolkit's loop; GTK is happy off the main thread as long as it stays on one), so the main
thread keeps the signals and the systemd watchdog. pystray and Pillow are imported on that
thread only, and only when a tray will really be shown.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from amberpicd.desktop.notify import Notifier

if TYPE_CHECKING:
    from amberpicd.daemon.service import Daemon
    from amberpicd.engine.commit import Report

log = logging.getLogger("amberpicd")
STOP_TIMEOUT = 3.0  # seconds the tray may take to go when the daemon stops


def why_no_tray(env: Mapping[str, str], *, flag: bool, configured: bool) -> str | None:
    """Why the daemon runs without a tray icon, or None when it should show one."""
    if not flag:
        return "started with --no-tray"
    if not configured:
        return "daemon.tray is false in the config"
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset); `amberpicd tray` adds one later"
    return None


class Desktop:
    def __init__(self, daemon: Daemon, *, tray: bool = True, env: Mapping[str, str] = os.environ):
        self.daemon = daemon
        self.env = env
        self.want_tray = tray
        self.notifier = Notifier(lambda: daemon.config.daemon.notify, env=env)
        self.tray = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        reason = why_no_tray(
            self.env, flag=self.want_tray, configured=self.daemon.config.daemon.tray
        )
        if reason:
            log.info("no tray icon: %s", reason)
            return
        from amberpicd.desktop.tray.app import InProcess, TrayApp

        self.tray = TrayApp(InProcess(self.daemon.handle), standalone=False, env=self.env)
        self._thread = threading.Thread(target=self.tray.run, name="amberpicd-tray", daemon=True)
        self._thread.start()

    def report(self, report: Report) -> None:
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
