"""The control socket's file: bound 0600 from its first instant, a stale one replaced, a
live one (another daemon) refused, and on exit only the file we bound removed.

Touches nothing but the socket path it is given (its folder is created 0700 by the caller).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path

from amberpicd.errors import ControlError, printable

log = logging.getLogger("amberpicd.daemon.control")

Identity = tuple[int, int]  # (st_dev, st_ino) of the socket file we bound


def bind_socket(path: Path, address: str) -> tuple[socket.socket, Identity]:
    """A bound (not yet listening) Unix socket at ``address`` and its file's identity."""
    for _ in range(3):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Linux gives a new socket file the mode of the socket's own inode, less the
        # umask: setting it first means the file is never wider than 0600, without
        # changing the process-wide umask under other threads' feet. (Should a kernel
        # refuse, the chmod below still applies and the 0700 folder covers the gap.)
        with contextlib.suppress(OSError):
            os.fchmod(sock.fileno(), 0o600)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise ControlError(f"cannot bind {path}: {exc.strerror}") from exc
            _remove_stale(path, address)
            continue
        try:
            os.chmod(address, 0o600)  # normally a no-op; covers a umask that clears u+rw
            st = os.stat(address)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(address)
            raise ControlError(f"cannot secure {path}: {exc.strerror}") from exc
        return sock, (st.st_dev, st.st_ino)
    raise ControlError(f"cannot bind {path}: it keeps being recreated by someone else")


def unlink_own(path: Path, identity: Identity | None) -> None:
    """Remove ``path`` if it is still the file we bound (another daemon may own it now)."""
    if identity is None:
        return
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("cannot remove %s: %s", printable(str(path)), exc.strerror)


def _remove_stale(path: Path, address: str) -> None:
    try:
        st = os.lstat(address)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} exists and is not a socket; move it away")
    if _answers(address):
        raise ControlError(f"another amberpicd is already listening on {path}")
    log.info("removing stale control socket %s", printable(str(path)))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)


def _answers(address: str) -> bool:
    """Does a live server accept connections at ``address``?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except (BlockingIOError, TimeoutError):
            return True  # backlog full: alive but busy
        except OSError as exc:
            raise ControlError(f"cannot check the socket {address}: {exc.strerror or exc}") from exc
    return True
