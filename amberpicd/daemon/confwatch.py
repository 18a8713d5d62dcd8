"""Notices edits of the config file (editors save by rename, so the folder is watched)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import watchdog.events as ev
from watchdog.observers.inotify import InotifyObserver

log = logging.getLogger(__name__)


class _Handler(ev.FileSystemEventHandler):
    def __init__(self, target: Path, changed: Callable[[], None]):
        self.target, self.changed = target, changed

    def on_any_event(self, event: ev.FileSystemEvent) -> None:
        if isinstance(event, ev.FileOpenedEvent | ev.FileClosedNoWriteEvent):
            return
        paths = {Path(str(event.src_path)), Path(str(getattr(event, "dest_path", "") or ""))}
        if self.target in paths:
            self.changed()


class ConfigFileWatcher:
    """Calls ``changed()`` whenever the file at ``path`` may have new content."""

    def __init__(self, path: Path | None, changed: Callable[[], None]):
        self.path = path.absolute() if path is not None else None
        self.changed = changed
        self._observer: InotifyObserver | None = None

    def start(self) -> None:
        if self.path is None or not self.path.parent.is_dir():
            return  # the embedded default never changes
        self._observer = InotifyObserver()
        self._observer.name = "amberpicd-config"
        self._observer.schedule(_Handler(self.path, self.changed), str(self.path.parent))
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
