"""Guard watches: noticing an inbox disappear and come back.

An inbox that disappears (deleted, or moved away, e.g. to the trash, which inotify does not
report on the folder itself) is noticed by a guard watch on its nearest existing parent, which
also notices its return. :class:`Guards` keeps those watches, one per parent folder shared by
the inboxes below it, in an observer of its own: inotify keeps one mask per folder and per
inotify instance, so a guard's narrow mask must not replace an inbox watch's. Not noticed: an
ancestor above the parent being renamed while the inbox exists.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import watchdog.events as ev
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from amberpicd.daemon.watchdog_glue import SafeHandler, alive, unschedule

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

_DIR_CHANGES = [ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]
# File events too: a symlink may stand in for the inbox.
_GUARD_EVENTS = [*_DIR_CHANGES, ev.FileCreatedEvent, ev.FileDeletedEvent, ev.FileMovedEvent]


def dir_ident(path: Path) -> tuple[str, int, int] | None:
    """(resolved path, st_dev, st_ino) of a folder, None if ``path`` is not one."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    return (real, st.st_dev, st.st_ino) if stat_mod.S_ISDIR(st.st_mode) else None


def nearest_parent(path: Path) -> Path | None:
    """The closest ancestor of ``path`` that is an existing folder."""
    return next((p for p in path.parents if os.path.isdir(p)), None)


@dataclass(eq=False)
class _Guard(Generic[K]):
    ident: tuple[str, int, int]
    watch: ObservedWatch
    users: dict[K, str] = field(default_factory=dict)  # user: its path's component right below


class Guards(Generic[K]):
    """Guard watches for users (inboxes), each guarded from the nearest parent of its path.

    ``changed(user)`` runs on watchdog's thread (keep it cheap) when something happened to the
    user's path or to its guard folder: look at the path again, then call :meth:`set`. The
    caller serialises :meth:`start`, :meth:`stop`, :meth:`set` and :meth:`release`.
    """

    def __init__(self, changed: Callable[[K], None]) -> None:
        self._changed = changed
        self._observer: BaseObserver | None = None
        self._guards: dict[str, _Guard[K]] = {}  # by the guard folder's real path
        self._of: dict[K, str] = {}  # user: the real path of its guard folder

    def start(self) -> None:
        self._observer = InotifyObserver()
        self._observer.name = "amberpicd-guard"
        self._observer.start()

    def stop(self) -> None:
        """Stop the observer and join its threads; drop every guard."""
        if self._observer is not None:
            self._observer.stop()
            if self._observer.ident is not None:
                self._observer.join()
        self._observer = None
        self._guards, self._of = {}, {}

    def set(self, user: K, path: Path, parent: Path | None) -> None:
        """Guard ``user``'s ``path`` from ``parent``, its nearest existing parent (None, or a
        folder that cannot be watched: no guard)."""
        ident = dir_ident(parent) if parent is not None else None
        if parent is None or ident is None or self._observer is None:
            self.release(user)
            return
        real = ident[0]
        guard = self._guards.get(real)
        users: dict[K, str] = {}
        if guard is not None and (guard.ident != ident or not alive(self._observer, guard.watch)):
            # Its folder was deleted or replaced: re-arm it for the same users.
            unschedule(self._observer, guard.watch)
            del self._guards[real]
            users, guard = guard.users, None
        if guard is None:
            try:
                watch = self._observer.schedule(
                    SafeHandler(lambda e, real=real: self._on_event(real, e)),
                    real,
                    recursive=False,
                    event_filter=_GUARD_EVENTS,
                )
            except OSError as exc:
                log.debug("%s: cannot guard: %s", parent, exc.strerror or exc)
                self.release(user)
                return
            guard = self._guards[real] = _Guard(ident, watch, users)
        if self._of.get(user) != real:
            self.release(user)
        guard.users[user] = path.relative_to(parent).parts[0]
        self._of[user] = real

    def release(self, user: K) -> None:
        """Stop guarding ``user``; a guard left without users is unscheduled."""
        real = self._of.pop(user, None)
        guard = self._guards.get(real) if real else None
        if guard is not None:
            guard.users.pop(user, None)
            if not guard.users:
                del self._guards[guard.ident[0]]
                unschedule(self._observer, guard.watch)

    def _on_event(self, real: str, event: ev.FileSystemEvent) -> None:
        # On watchdog's thread, without a lock: one dict lookup and a list() copy are atomic.
        guard = self._guards.get(real)
        if guard is None:
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        names = {os.path.basename(src), os.path.basename(dest)}
        for user, name in list(guard.users.items()):
            if src == real or name in names:
                self._changed(user)
