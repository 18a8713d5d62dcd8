"""systemd notifications (readiness, status, watchdog) without libsystemd.

The protocol is one datagram of ``KEY=value`` lines to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means Linux's abstract namespace). Outside systemd the
variable is unset and every call is a no-op; a failed send is logged at debug level and never
raised, so a missing or broken systemd cannot take the daemon down.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# systemd reads the socket promptly; if it ever stops, don't let a full queue stall us.
SEND_TIMEOUT = 1.0


def notify(*fields: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=..."``) as one datagram.

    True if sent; False when ``NOTIFY_SOCKET`` is unset, unusable, or the send failed.
    """
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not fields:
        return False
    if address.startswith("@"):
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        # e.g. "vsock:…": a network family, which amberpicd never uses.
        log.debug("NOTIFY_SOCKET=%r is not a Unix socket; not notifying", address)
        return False
    try:
        data = "\n".join(fields).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.connect(target)
            sock.send(data, socket.MSG_NOSIGNAL)
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path, unencodable text
        log.debug("sd_notify %s to %r failed: %s", fields, address, exc)
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment.
    return " ".join(text.splitlines())


def ready(status: str, env: Mapping[str, str] = os.environ) -> bool:
    """Tell systemd start-up is complete (``Type=notify``), with a status line."""
    return notify("READY=1", f"STATUS={_one_line(status)}", env=env)


def status(text: str, env: Mapping[str, str] = os.environ) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}", env=env)


def stopping(env: Mapping[str, str] = os.environ) -> bool:
    """Tell systemd we are shutting down on purpose."""
    return notify("STOPPING=1", env=env)


def watchdog_interval(env: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``); None when the watchdog is off.

    Off when ``WATCHDOG_USEC`` is unset, not a positive integer, or ``WATCHDOG_PID`` names
    another process (the variables leaked to a child of the service's main process).
    """
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    try:
        usec = int(raw)
        owner = env.get("WATCHDOG_PID", "")
        if owner and int(owner) != os.getpid():
            return None
    except ValueError:
        log.debug("ignoring WATCHDOG_USEC=%r WATCHDOG_PID=%r", raw, env.get("WATCHDOG_PID"))
        return None
    return usec / 2_000_000 if usec > 0 else None


class Watchdog:
    """systemd's watchdog: ``ping()`` at least every ``interval`` seconds when it is set."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self._env = env
        self.interval: float | None = watchdog_interval(env)
        self._last: float | None = None

    def ping(self) -> bool:
        """Send ``WATCHDOG=1``; a no-op returning False when the watchdog is off."""
        if self.interval is None:
            return False
        self._last = time.monotonic()
        return notify("WATCHDOG=1", env=self._env)

    def ping_if_due(self) -> bool:
        """``ping()`` unless the last ping is younger than ``interval / 2``: for busy loops.

        A loop that calls it at least every ``interval / 2`` s thus pings at least every
        ``interval`` s, well within the timeout.
        """
        if self.interval is None:
            return False
        if self._last is not None and time.monotonic() - self._last < self.interval / 2:
            return False
        return self.ping()

    def feed(self, heartbeat: float) -> bool:
        """``ping_if_due()`` only while the work loop is alive: ``heartbeat`` (a
        ``time.monotonic()`` value) is when it last went round. A loop silent for longer than
        ``interval`` gets no ping, so systemd restarts a hung daemon instead of an idle
        thread keeping it "healthy" for ever."""
        if self.interval is None:
            return False
        if time.monotonic() - heartbeat > self.interval:
            return False
        return self.ping_if_due()
