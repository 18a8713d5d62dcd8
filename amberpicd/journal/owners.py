"""Who owns a job: each process writing the journal holds an exclusive ``flock`` on its own
file in ``.<journal>.owners/`` for as long as it has the journal open, and stamps the jobs it
begins with that file's name. Crash recovery takes only the jobs whose owner is gone (its
file can be locked, or is missing), never those of another live process, e.g. an
``amberpicd process`` run beside the daemon.

The kernel drops a ``flock`` when its last descriptor closes, so a ``kill -9``-ed owner
never looks alive: no pid liveness guessing. The descriptor is close-on-exec and the
workers come from an exec'd fork server, so no worker keeps a dead owner looking alive.

May touch: files below ``.<journal>.owners/`` only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path


def owners_dir(journal: Path) -> Path:
    """``.journal.db.owners`` beside the journal (hidden: no tool globbing ``journal*``
    takes it for one of the journal's files)."""
    return journal.with_name(f".{journal.name}.owners")


def _valid(owner: str) -> bool:
    return owner.isalnum() and owner.isascii()  # a name we made: never a path


class OwnerLock:
    """This process's claim on its jobs: ``id`` is stamped on them (None: the claim could
    not be made, e.g. a read-only state folder; its jobs are then anyone's to recover)."""

    def __init__(self, journal: Path) -> None:
        self.folder = owners_dir(journal)
        self.id: str | None = None
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            self.folder.mkdir(mode=0o700, exist_ok=True)
            owner = f"{os.getpid()}x{secrets.token_hex(8)}"
            # Locked under a hidden name, then renamed: a file under an owner's name is
            # locked from the moment it exists, so a reaper never takes a new one as gone.
            hidden = self.folder / f".{owner}"
            fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(hidden, self.folder / owner)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(hidden)
                raise
            self.id, self._fd = owner, fd

    def gone(self, owner: str | None) -> bool:
        """Whether the process that stamped ``owner`` on a job has ended (or never said)."""
        if owner is None or owner == self.id:
            return True  # an old journal's job, or one of ours (a test's single process)
        if not _valid(owner):
            return True
        try:
            fd = os.open(self.folder / owner, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return True  # it ended cleanly (or its file was removed)
        except OSError:
            return False  # cannot tell: leave its jobs alone, the next start looks again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

    def reap(self) -> int:
        """Remove the files of owners that are gone (their jobs taken over first); returns
        how many. A kill -9 leaves one file each: they would pile up."""
        removed = 0
        with contextlib.suppress(OSError):
            for name in os.listdir(self.folder):
                if _valid(name) and name != self.id and self.gone(name):
                    with contextlib.suppress(OSError):
                        os.unlink(self.folder / name)
                        removed += 1
        return removed

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # unlink while locked: nobody mistakes it as gone
            os.unlink(self.folder / str(self.id))
        os.close(fd)
