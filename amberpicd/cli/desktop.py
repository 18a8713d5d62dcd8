"""Commands for the desktop: tray, install-service, uninstall-service.

``tray`` shows desktop/tray for a daemon reached over the control socket; the service commands
write or remove what desktop/service_install manages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amberpicd.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, add_command, setup_logging


def _tray(args: argparse.Namespace) -> int:
    from amberpicd.daemon.control import socket_path
    from amberpicd.desktop.tray.app import OverSocket, TrayApp

    setup_logging(args.verbose)
    app = TrayApp(OverSocket(socket_path()), standalone=True)
    return EXIT_OK if app.run() else EXIT_FAILED


def _install(args: argparse.Namespace) -> int:
    from amberpicd.desktop.service_install import install

    config = Path(args.config).absolute() if args.config else None
    return install(now=args.now, autostart=args.autostart, config=config)


def _uninstall(args: argparse.Namespace) -> int:
    from amberpicd.desktop.service_install import uninstall

    return uninstall()


def register(sub: Subparsers) -> None:
    add_command(
        sub,
        "tray",
        "show the tray icon for a running daemon (no daemon inside)",
        "Show the tray icon for a daemon that runs without one (for example one started "
        "before the desktop was up). Its menu can stop the daemon or close only the icon.",
        "amberpicd tray &",
        run=_tray,
    )
    p = add_command(
        sub,
        "install-service",
        "start amberpicd at login: a systemd user unit (or an XDG autostart entry)",
        "Write a systemd user unit that runs this installation of amberpicd with every "
        "graphical session, and enable it (or, with --autostart or without systemd, an XDG "
        "autostart entry). It prints every step.",
        "amberpicd install-service --now",
        run=_install,
    )
    p.add_argument("--now", action="store_true", help="also start it now")
    p.add_argument(
        "--autostart",
        action="store_true",
        help="write an XDG autostart entry instead of a systemd unit "
        "(for sessions that never start graphical-session.target)",
    )
    add_command(
        sub,
        "uninstall-service",
        "undo install-service (unit and autostart entry)",
        "Disable and remove what install-service wrote (only files it wrote).",
        "amberpicd uninstall-service",
        run=_uninstall,
    )
