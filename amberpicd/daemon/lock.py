"""One daemon per state folder: an exclusive ``flock`` on ``state_dir/daemon.lock``.

The kernel drops a ``flock`` when the last descriptor of the open file is closed, so a
crashed or ``kill -9``-ed daemon never leaves a stale lock: no pid liveness guessing. The
pid written into the file is only for the error message. The file is never deleted:
unlinking a lock file lets two processes lock two different inodes of the same name.

The descriptor is close-on-exec, but a child made by a bare ``fork`` (a fork-based
``multiprocessing`` worker) shares it and so keeps the lock until that child exits too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path

from amberpicd.errors import AmberpicError
from amberpicd.paths import state_dir

LOCK_NAME = "daemon.lock"
# The holder writes its pid right after locking; wait this long for it to show up.
_PID_WAIT = 0.2


def lock_path(env: Mapping[str, str] = os.environ) -> Path:
    """``state_dir(env)/daemon.lock``."""
    return state_dir(env) / LOCK_NAME


class InstanceLock:
    """Hold ``path`` exclusively; ``with InstanceLock(lock_path()):`` or acquire()/release()."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock without waiting; AmberpicError naming the holder's pid if taken."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = _open(self.path)
        except OSError as exc:
            raise AmberpicError(f"cannot open the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_pid(fd)
            os.close(fd)
            raise AmberpicError(
                f"another amberpicd (pid {holder}) is already running "
                f"with state in {self.path.parent}"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise AmberpicError(f"cannot lock {self.path}: {exc.strerror}") from exc
        with contextlib.suppress(OSError):  # the pid is informative only; the lock is held
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (a no-op when not held). The file stays."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # still locked: nobody reads a half-cleared pid
        os.close(fd)  # closing the only descriptor releases the flock


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
    # A read-only state filesystem: flock needs no write access, so the lock file of an
    # earlier start still gives one daemon per state folder (the journal's open then waits).
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)


def daemon_running(path: Path) -> bool:
    """Whether a process holds the lock at ``path`` now (a daemon runs), read from
    ``/proc/locks``: looking never takes the lock, so a daemon starting that very moment
    never finds it taken by the one who looked. False when it cannot be told."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    # "1: FLOCK  ADVISORY  WRITE 812 fe:00:2146941 0 EOF"; a waiter's line has "->" second.
    return any(
        len(parts) > 5 and parts[1] == "FLOCK" and parts[5] == key
        for parts in (line.split() for line in table.splitlines())
    )


def _holder_pid(fd: int) -> str:
    deadline = time.monotonic() + _PID_WAIT
    while True:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return text
        if time.monotonic() >= deadline:
            return "unknown"
        time.sleep(0.01)
