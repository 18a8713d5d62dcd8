"""Inbox watching: filesystem events in, "this file is complete" calls out.

:class:`InboxWatcher` runs a watchdog inotify observer with a schedule per inbox and feeds each
file event to a :class:`~amberpicd.daemon.settle.Settler` (settle.py says when a file is
complete): the settle stage. Watchdog's threads only enqueue raw events; one settle thread
translates them (inbox_events.py, which may ask ``ignore``, the journal, about a path), sleeps
until the next deadline (indefinitely while nothing is pending) and makes every callback.
Callbacks must be cheap (enqueue and return). Reported paths start with the inbox path as
configured, also when it is a symlink. ``ready`` may see a path again after a new write, and
rescans find files that were also reported: the consumer dedupes.

An inbox that disappears, and its return, is noticed by a guard watch on its nearest existing
parent (guard.py). An inotify queue overflow, which watchdog only logs (watchdog_glue.py), gives
``on_overflow()``, and pending files fall back to the quiet-and-stable rule. Network filesystems
deliver no inotify events for remote changes: only rescans see those. Which files count, and
:func:`~amberpicd.daemon.scan.scan`, live in scan.py.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import watchdog.events as ev
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver

from amberpicd.daemon.guard import Guards, dir_ident, nearest_parent
from amberpicd.daemon.inbox_events import INBOX_EVENTS, Inbox, translate
from amberpicd.daemon.scan import ignored, never, scan
from amberpicd.daemon.settle import Settler
from amberpicd.daemon.watchdog_glue import SafeHandler, WatchdogLogs, alive, unschedule

log = logging.getLogger(__name__)


class InboxWatcher:
    """Watches inboxes and calls ``ready(path)`` once a dropped file is complete.

    Never reported: folders, symlinks, FIFOs, sockets, devices, names :func:`is_ignored_name`
    refuses, files in sub-folders of a non-recursive inbox, files of a nested inbox (the deepest
    inbox owns a file), and paths ``ignore(path)`` accepts (the daemon's outputs; it runs on
    the settle thread). Every callback runs on the settle thread. An inbox that
    cannot be created or watched, or disappears, gives ``on_inbox_lost``; its return gives
    ``on_inbox_back``. After that, and after ``on_overflow``, call :meth:`rescan`.
    """

    def __init__(
        self,
        inboxes: Sequence[tuple[Path, bool]],
        ready: Callable[[Path], None],
        *,
        quiet: float = 2.0,
        ignore: Callable[[Path], bool] = never,
        known: Callable[[list[Path]], set[Path]] = lambda paths: set(),
        on_overflow: Callable[[], None] | None = None,
        on_inbox_lost: Callable[[Path], None] | None = None,
        on_inbox_back: Callable[[Path], None] | None = None,
    ) -> None:
        self._wanted = self._normalise(inboxes)
        self._ready = ready
        self._ignore = ignore
        self._known = known  # rescans pass over these files: unchanged since processed
        self._on_overflow = on_overflow
        self._on_lost = on_inbox_lost
        self._on_back = on_inbox_back
        self._clock = time.monotonic
        self._settler = Settler(quiet, self._clock)
        self._cond = threading.Condition()  # guards the settler and the work lists below
        self._manage = threading.RLock()  # serialises schedule changes
        self._inboxes: dict[Path, Inbox] = {}  # replaced whole, never mutated: read lock-free
        self._guards: Guards[Inbox] = Guards(self._request)
        self._to_reconcile: set[Inbox] = set()
        self._notes: list[tuple[Callable[[Path], None] | None, Path]] = []
        self._events: list[tuple[Inbox, ev.FileSystemEvent]] = []  # from watchdog's threads
        self._overflow = False
        self._stopping = False
        self._sleep_until = -math.inf  # the settle thread's wake-up time; -inf while awake
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._logs = WatchdogLogs(self._overflowed)

    @staticmethod
    def _normalise(inboxes: Sequence[tuple[Path, bool]]) -> dict[Path, bool]:
        wanted: dict[Path, bool] = {}
        for path, recursive in inboxes:
            key = Path(os.path.abspath(os.path.expanduser(path)))
            wanted[key] = wanted.get(key, False) or bool(recursive)
        return wanted

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create missing inboxes, start watching. Problems with one inbox are reported through
        ``on_inbox_lost`` (and logged), not raised."""
        with self._manage:
            if self._observer is not None or self._stopping:
                raise RuntimeError("InboxWatcher.start() called twice")
            try:
                self._observer = InotifyObserver(generate_full_events=True)
                self._observer.name = "amberpicd-watch"
                self._observer.start()
                self._guards.start()
                self._logs.attach()
                self._thread = threading.Thread(target=self._run, name="amberpicd-settle")
                self._thread.daemon = True
                self._thread.start()
                self._apply(self._wanted)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop watching and join every thread this watcher started. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._manage:
            if self._observer is not None:
                self._observer.stop()
                if self._observer.ident is not None:
                    self._observer.join()
            self._guards.stop()
            self._observer = None
            self._inboxes = {}
            self._logs.detach()

    def set_inboxes(self, inboxes: Sequence[tuple[Path, bool]]) -> None:
        """Watch exactly these inboxes from now on; the others keep their watches."""
        with self._manage:
            self._wanted = self._normalise(inboxes)
            if self._observer is not None and not self._stopping:
                self._apply(self._wanted)

    def rescan(self, inbox: Path | None = None) -> int:
        """Feed the files now in ``inbox`` (default: every watched inbox) through the settle
        fallback, so those still being written are not taken early; they reach ``ready`` once
        quiet and stable. Returns how many files were found."""
        with self._manage:
            states = list(self._inboxes.values())
        key = Path(os.path.abspath(inbox)) if inbox is not None else None
        found = 0
        for st in states:
            if st.watch is None or (key is not None and st.path != key):
                continue
            nested = {o.path for o in states if o is not st and o.path.is_relative_to(st.path)}

            def skip(path: Path, nested: set[Path] = nested) -> bool:
                return path in nested or ignored(self._ignore, path)

            paths = list(scan(st.path, st.recursive, skip))
            # A file unchanged since it was processed needs no settling and no job: at a
            # start over 10,000 kept files, that is 10,000 lstats and a few queries.
            try:
                passed = self._known(paths)
            except Exception:  # unsure: every file takes the usual way
                log.exception("%s: rescan could not consult the journal", st.path)
                passed = set()
            if passed:
                n = len(passed)
                log.debug("%s: %d files unchanged since processed; passed over", st.path, n)
                paths = [p for p in paths if p not in passed]
            with self._cond:
                for path in paths:
                    self._settler.observe(path, "found")
                self._poke()
            found += len(paths)
        return found

    def pending(self) -> int:
        """How many files are being written or settling (not yet reported); zero-byte files
        waiting for content do not count."""
        with self._cond:
            return self._settler.pending()

    def empty(self) -> list[Path]:
        """Zero-byte files waiting for content (a download's placeholder, an empty copy)."""
        with self._cond:
            return self._settler.empty()

    def lost(self) -> list[Path]:
        """The inboxes that cannot be watched right now."""
        return [st.path for st in self._inboxes.values() if st.watch is None]

    # -- watch management (under self._manage) -----------------------------------------------

    def _apply(self, wanted: dict[Path, bool]) -> None:
        current = self._inboxes
        states: dict[Path, Inbox] = {}
        for path, recursive in wanted.items():
            old = current.get(path)
            keep = old is not None and old.recursive == recursive
            states[path] = old if keep and old is not None else Inbox(path, recursive)
        added = [st for st in states.values() if st not in current.values()]
        dropped = [st for st in current.values() if st not in states.values()]
        self._inboxes = states
        # Watch the new ones before dropping the old: a changed ``recursive`` keeps no gap.
        for st in added:
            try:
                st.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("%s: cannot create inbox: %s", st.path, exc.strerror or exc)
            self._reconcile(st)
        for st in dropped:
            if st.watch is not None:
                unschedule(self._observer, st.watch)
                st.watch = None
            self._guards.release(st)
            if st.path not in states:
                with self._cond:
                    self._settler.forget(st.path)

    def _reconcile(self, st: Inbox) -> None:
        """Bring one inbox's watch and guard in line with what is on disk now."""
        if self._inboxes.get(st.path) is not st:
            return  # dropped meanwhile
        for _ in range(len(st.path.parts) + 8):
            ident = dir_ident(st.path)
            if st.watch is not None and (ident != st.ident or not alive(self._observer, st.watch)):
                unschedule(self._observer, st.watch)
                st.watch, st.ident = None, None
                with self._cond:
                    self._settler.forget(st.path)
                self._mark_lost(st)
            failed = False
            if st.watch is None and ident is not None and self._observer is not None:
                try:
                    st.watch = self._observer.schedule(
                        SafeHandler(lambda e, st=st: self._on_inbox_event(st, e)),
                        ident[0],
                        recursive=st.recursive,
                        event_filter=INBOX_EVENTS,
                    )
                    st.ident = ident
                except OSError as exc:
                    log.warning("%s: cannot watch inbox: %s", st.path, exc.strerror or exc)
                    failed = True
                else:
                    if st.lost:
                        st.lost = False
                        self._note(self._on_back, st.path)
            if st.watch is None:
                self._mark_lost(st)
            parent = nearest_parent(st.path)
            self._guards.set(st, st.path, parent)
            # Stable when nothing moved while we (re)armed the watches; else go round again.
            if failed or (dir_ident(st.path) == st.ident and nearest_parent(st.path) == parent):
                return
        log.warning("%s: still changing; will look again on its next event", st.path)

    def _mark_lost(self, st: Inbox) -> None:
        if not st.lost:
            st.lost = True
            log.warning("%s: inbox is gone or cannot be watched", st.path)
            self._note(self._on_lost, st.path)

    # -- event intake (watchdog's threads: record and return) --------------------------------

    def _on_inbox_event(self, st: Inbox, event: ev.FileSystemEvent) -> None:
        # Watchdog's thread: enqueue only. The settle thread translates (which may ask the
        # journal whether a path is one of our outputs).
        with self._cond:
            self._events.append((st, event))
            if len(self._events) == 1:
                self._cond.notify()

    def _take_events(self, events: list[tuple[Inbox, ev.FileSystemEvent]]) -> None:
        """On the settle thread: feed the events watchdog queued to the settler."""
        for st, event in events:
            try:
                actions = translate(st, event, self._inboxes.values(), self._ignore)
            except Exception:
                log.exception("failed to handle %r", event)
                continue
            for action in actions:
                if action[0] == "reconcile":
                    self._request(st)
                    continue
                with self._cond:
                    if action[0] == "observe":
                        self._settler.observe(action[1], action[2])
                    elif action[0] == "renamed":
                        self._settler.renamed(action[1], action[2])
                    else:
                        self._settler.forget(action[1])

    def _request(self, st: Inbox) -> None:
        with self._cond:
            self._to_reconcile.add(st)
            self._cond.notify()

    def _note(self, callback: Callable[[Path], None] | None, path: Path) -> None:
        with self._cond:
            self._notes.append((callback, path))
            self._cond.notify()

    def _overflowed(self) -> None:
        with self._cond:
            self._overflow = True
            self._cond.notify()

    def _poke(self) -> None:
        # Caller holds self._cond. Wake the settle thread only if a deadline moved earlier.
        deadline = self._settler.next_deadline()
        if deadline is not None and deadline < self._sleep_until:
            self._cond.notify()

    # -- the settle thread -------------------------------------------------------------------

    def _run(self) -> None:
        clock = self._clock
        while True:
            with self._cond:
                while not (
                    self._stopping
                    or self._to_reconcile
                    or self._notes
                    or self._overflow
                    or self._events
                ):
                    now, deadline = clock(), self._settler.next_deadline()
                    if deadline is not None and deadline <= now:
                        break
                    self._sleep_until = math.inf if deadline is None else deadline
                    self._cond.wait(None if deadline is None else deadline - now)
                self._sleep_until = -math.inf
                if self._stopping:
                    return
                todo, self._to_reconcile = self._to_reconcile, set()
                overflow, self._overflow = self._overflow, False
                events, self._events = self._events, []
            self._take_events(events)  # those before an overflow count as seen
            if overflow:
                with self._cond:
                    self._settler.events_lost()
            if todo:
                with self._manage:
                    for st in todo:
                        self._reconcile(st)
            with self._cond:
                notes, self._notes = self._notes, []
                ready = self._settler.due(clock())
            for callback, path in notes:
                self._call(callback, path)
            if overflow:
                log.warning("inotify queue overflowed: events were lost")
                self._call(self._on_overflow)
            for path in ready:
                self._call(self._ready, path)

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("watcher callback %r failed", callback)
