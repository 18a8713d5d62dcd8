"""What one watchdog event in an inbox means for the settler: a pure translation.

``translate`` turns a raw event into settler calls: ``("observe", path, kind)``,
``("renamed", old, new)``, ``("forget", folder)`` or ``("reconcile",)`` (the inbox folder
itself went). It decides which inbox owns a path (the deepest), drops sub-folder files of a
non-recursive inbox, ignored names and what ``ignore`` refuses (the daemon's outputs: it
queries the journal, so this runs on the watcher's settle thread, never on watchdog's).
Touches nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import watchdog.events as ev
from watchdog.observers.api import ObservedWatch

from amberpicd.daemon.scan import ignored, is_ignored_name
from amberpicd.daemon.settle import Kind

KINDS: dict[type[ev.FileSystemEvent], Kind] = {
    ev.FileCreatedEvent: "created",
    ev.FileModifiedEvent: "modified",
    ev.FileOpenedEvent: "opened",
    ev.FileClosedEvent: "closed",
    ev.FileClosedNoWriteEvent: "closed_nowrite",
    ev.FileDeletedEvent: "deleted",
}
# One filter, hence one inotify mask, for all inbox schedules (see guard.py).
INBOX_EVENTS = [*KINDS, ev.FileMovedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]

Action = tuple  # ("observe", Path, Kind) | ("renamed", Path, Path) | ("forget", Path) | ...


@dataclass(eq=False)
class Inbox:
    path: Path  # absolute, as configured: reported paths start with it
    recursive: bool
    watch: ObservedWatch | None = None
    ident: tuple[str, int, int] | None = None  # of the folder watched; [0] is its real path
    lost: bool = False  # on_inbox_lost was reported and on_inbox_back not yet

    @property
    def real(self) -> str | None:
        return self.ident[0] if self.ident else None


def translate(
    st: Inbox,
    event: ev.FileSystemEvent,
    inboxes: Iterable[Inbox],
    ignore: Callable[[Path], bool],
) -> list[Action]:
    """The settler calls ``event`` (seen by ``st``'s watch) stands for."""
    real = st.real
    if real is None:
        return []
    src = os.fsdecode(event.src_path)
    dest = os.fsdecode(getattr(event, "dest_path", "") or "")
    if event.is_directory:
        if src == real:
            return [("reconcile",)]  # the inbox itself was deleted
        if isinstance(event, ev.DirDeletedEvent | ev.DirMovedEvent) and (
            _user_path(st, real, dest) is None
        ):
            # A sub-folder left the inbox: forget what was pending in it. (A folder renamed
            # within the inbox brings per-file moved events of its own.)
            gone = _user_path(st, real, src)
            if gone is not None:
                return [("forget", gone)]
        return []
    inboxes = list(inboxes)
    if isinstance(event, ev.FileMovedEvent):
        old = _accept(st, real, src, inboxes, ignore) if src else None
        new = _accept(st, real, dest, inboxes, ignore) if dest else None
        if old is not None and new is not None:
            return [("renamed", old, new)]
        if old is not None:
            return [("observe", old, "deleted")]
        if new is not None:
            return [("observe", new, "moved_in")]
        return []
    kind = KINDS.get(type(event))
    path = _accept(st, real, src, inboxes, ignore) if kind is not None else None
    return [("observe", path, kind)] if kind is not None and path is not None else []


def _user_path(st: Inbox, real: str, raw: str) -> Path | None:
    prefix = real.rstrip(os.sep) + os.sep
    return st.path / raw[len(prefix) :] if raw.startswith(prefix) else None


def _accept(
    st: Inbox, real: str, raw: str, inboxes: list[Inbox], ignore: Callable[[Path], bool]
) -> Path | None:
    """The reported path for a file event, or None if this inbox must not report it."""
    path = _user_path(st, real, raw)
    if path is None or _owner(raw, inboxes) is not st:
        return None
    rel = path.relative_to(st.path)
    if not st.recursive and len(rel.parts) != 1:
        return None
    if is_ignored_name(rel) or ignored(ignore, path):
        return None
    return path


def _owner(raw: str, inboxes: list[Inbox]) -> Inbox | None:
    # Nested inboxes: the deepest watched folder containing the file owns it.
    best, depth = None, -1
    for st in inboxes:
        real = st.real
        if real and len(real) > depth and raw.startswith(real.rstrip(os.sep) + os.sep):
            best, depth = st, len(real)
    return best
