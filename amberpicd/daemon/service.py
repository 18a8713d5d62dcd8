"""``amberpicd run``: wires the watcher, queue, dispatcher, journal, control socket and
signals together, and owns the daemon's state (paused, inboxes, config, last failures).

    InboxWatcher ──ready(path)──▶ PendingQueue ──▶ Dispatcher ──▶ WorkerPool (pipeline.run)
                                                      │
                                                      ▼
                                    commit (publish, original) + Journal
The tray, the CLI and the control socket read ``status()`` and send commands here; they
never reach into the engine.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path

from amberpicd import __version__
from amberpicd.config.loader import LoadedConfig, load_config
from amberpicd.config.schema import Config, Watch
from amberpicd.daemon import sdnotify
from amberpicd.daemon.confwatch import ConfigFileWatcher
from amberpicd.daemon.control import ControlServer, socket_path
from amberpicd.daemon.desktop import Desktop
from amberpicd.daemon.dispatcher import Dispatcher, job_for
from amberpicd.daemon.lock import InstanceLock
from amberpicd.daemon.queue import PendingQueue
from amberpicd.daemon.recovery import recover
from amberpicd.daemon.toggles import Toggles
from amberpicd.daemon.watcher import InboxWatcher
from amberpicd.engine.batch import worker_setup
from amberpicd.engine.commit import Report
from amberpicd.errors import AmberpicError, ConfigError, JournalError, JournalLocked, printable
from amberpicd.journal import Journal
from amberpicd.output.template import fixed_root
from amberpicd.paths import state_dir
from amberpicd.workers.pool import ENGINE, WorkerPool

log = logging.getLogger("amberpicd")
RELOAD_SETTLE = 0.3  # seconds without further config-file events before reloading
JOURNAL_RETRY = 2.0  # seconds between attempts to open a locked journal
TICK = 0.5  # seconds: the main loop looks at the flags signal handlers set at least this often


class Daemon:
    def __init__(self, config_path: Path | None = None, *, env=os.environ, tray: bool = True):
        self.config_path = config_path
        self.env = env
        self.loaded: LoadedConfig = load_config(config_path, env=env)
        self.state = state_dir(env)
        self.toggles_file = self.state / "toggles.json"
        self.toggles = Toggles.load(self.toggles_file)
        self.queue = PendingQueue()
        self.recent: deque[dict] = deque(maxlen=50)
        self.failures_unseen = 0
        self.config_error: str | None = None
        self.generation = 0  # counts successful (re)loads
        self.lost_inboxes: set[str] = set()
        self.journal_lost: str | None = None  # the journal was deleted/replaced (until seen)
        self.started = time.time()
        self._stopping = False
        self._reload_now = False
        self._wake = threading.Event()  # the main loop sleeps on it
        self._lock = threading.RLock()
        self.desktop = Desktop(self, tray=tray, env=env)  # tray icon, notifications

    # -- state read by status, the tray and the CLI ---------------------------------------
    @property
    def config(self) -> Config:
        return self.loaded.config

    def watches(self) -> list[Watch]:
        return [
            w for w in self.config.watch if w.enabled and str(w.inbox) not in self.toggles.disabled
        ]

    def activity(self) -> str:
        if self.dispatcher.journal_error:
            return "error"  # before busy: files wait in the queue because of it
        if self.toggles.paused:
            return "paused"
        if self.dispatcher.busy or self.watcher.pending():
            return "busy"
        if self.failures_unseen or self.config_error or self.lost_inboxes or self.journal_lost:
            return "error"
        return "idle"

    def status(self) -> dict:
        try:
            counts = self.journal.counts(since=self.started)
        except JournalError:
            counts = {}
        inboxes = []
        for w in self.config.watch:
            key = str(w.inbox)
            inboxes.append(
                {
                    "inbox": key,
                    "enabled": w.enabled and key not in self.toggles.disabled,
                    "watching": key not in self.lost_inboxes,
                    "recursive": w.recursive,
                    "counts": counts.get(key, {}),
                }
            )
        return {
            "state": self.activity(),
            "paused": self.toggles.paused,
            "queue": len(self.queue) + self.watcher.pending() + self.dispatcher.waiting,
            "in_flight": len(self.dispatcher.running),
            "empty": [str(p) for p in self.watcher.empty()],  # zero bytes, waiting for content
            "inboxes": inboxes,
            "outputs": sorted({str(fixed_root(r.output)) for r in self.config.rules}),
            "recent": list(self.recent)[-10:],
            "failures_unseen": self.failures_unseen,
            "config": {
                "source": str(self.loaded.source or "embedded"),
                "error": self.config_error,
                "generation": self.generation,
            },
            "journal": {
                "recovered_from": _str_or_none(self.journal.recovered_from),
                "error": self.dispatcher.journal_error,
                "lost": self.journal_lost,
            },
            "pid": os.getpid(),
            "version": __version__,
        }

    # -- commands ------------------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        with self._lock:
            if cmd == "status":
                return {"ok": True, **self.status()}
            if cmd in ("pause", "resume"):
                self.set_paused(cmd == "pause")
                return {"ok": True, "paused": self.toggles.paused}
            if cmd == "reload":
                error = self.reload()
                return {"ok": error is None, "error": error}
            if cmd == "retry":
                source = request.get("path")
                try:
                    return {"ok": True, "queued": self.retry(Path(source) if source else None)}
                except JournalError as exc:  # e.g. the state disk is full: say so, not a crash
                    return {"ok": False, "error": f"retry: journal: {exc}"}
            if cmd == "undo":
                return self.undo(request)
            if cmd == "seen":
                self.failures_unseen = 0
                self.journal_lost = None
                return {"ok": True}
            if cmd in ("enable", "disable"):
                return self.set_inbox(str(request.get("inbox", "")), cmd == "enable")
            if cmd == "stop":
                self.request_stop()
                return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def set_paused(self, paused: bool) -> None:
        self.toggles.paused = paused
        self.dispatcher.paused = paused
        self.toggles.save(self.toggles_file)
        self.dispatcher.wake()
        log.info("paused" if paused else "resumed")
        self._notify_status()

    def set_inbox(self, inbox: str, enabled: bool) -> dict:
        known = {str(w.inbox) for w in self.config.watch}
        if inbox not in known:
            return {"ok": False, "error": f"no inbox {inbox!r} in the config"}
        (self.toggles.disabled.discard if enabled else self.toggles.disabled.add)(inbox)
        self.toggles.save(self.toggles_file)
        self._apply_watches()
        if enabled:
            self.watcher.rescan(Path(inbox))
        log.info("inbox %s %s", inbox, "enabled" if enabled else "disabled")
        return {"ok": True}

    def retry(self, source: Path | None) -> int:
        """Failed files run again; files whose outputs are written but whose original step
        failed run that step only (their outputs are never made twice)."""
        resumed = self.journal.retry_originals(source)
        for job in resumed:
            self.dispatcher.resume_original(job)
        jobs = self.journal.retry(source)
        sources = list(dict.fromkeys(j.source for j in jobs))
        for path in sources:
            if path.exists():
                self.queue.put(path)
        self.failures_unseen = 0
        return len(sources) + len({j.source for j in resumed})

    def undo(self, request: dict) -> dict:
        """The ``undo`` control command (the tray's Undo): daemon/undo_command.py."""
        from amberpicd.daemon.undo_command import handle_undo

        return handle_undo(self.journal, self.config, request, self.recent)

    def reload(self) -> str | None:
        """Load the config again; on error keep the running one and say why."""
        try:
            loaded = load_config(self.config_path, env=self.env)
        except ConfigError as exc:
            self.config_error = str(exc)
            log.error("config not reloaded, keeping the running one: %s", exc)
            return self.config_error
        with self._lock:
            self.loaded, self.config_error = loaded, None
            self.generation += 1
            self._apply_watches()
        self.watcher.rescan()
        log.info("config reloaded from %s", loaded.source or "embedded default")
        return None

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_now = True
        self._wake.set()

    # -- wiring ----------------------------------------------------------------------------
    def _apply_watches(self) -> None:
        self.watcher.set_inboxes([(w.inbox, w.recursive) for w in self.watches()])

    def _ignore(self, path: Path) -> bool:
        return self.journal.is_output(path)

    def _on_report(self, report: Report) -> None:
        entry = {
            "source": str(report.source),
            "status": report.status,
            "outputs": [str(p) for p in report.outputs],
            "error": report.error,
            "time": time.time(),
        }
        self.recent.append(entry)
        if report.status == "failed":
            self.failures_unseen += 1
            log.error("%s", report.error)
        elif report.status == "done":
            log.info(
                "%s → %s",
                printable(report.source.name),
                printable(", ".join(p.name for p in report.outputs)),
            )
        elif report.error:  # skipped: not an image, or an empty file (not failures)
            log.info("%s", report.error)
        if report.note:  # e.g. the original kept because an output was skipped
            log.warning("%s", report.note)
        self._notify_status()
        self.desktop.report(report)

    def _lost(self, inbox: Path) -> None:
        self.lost_inboxes.add(str(inbox))
        log.error("inbox %s is gone; watching for it to come back", inbox)

    def _back(self, inbox: Path) -> None:
        self.lost_inboxes.discard(str(inbox))
        log.info("inbox %s is back", inbox)
        self.watcher.rescan(inbox)  # files dropped before the watch returned

    def _overflow(self) -> None:
        log.warning("too many events at once; rescanning the inboxes")
        self.watcher.rescan()

    def _notify_status(self) -> None:
        queued = len(self.queue) + len(self.dispatcher.running)
        text = (
            "paused"
            if self.toggles.paused
            else (f"processing {queued} files" if queued else "idle")
        )
        sdnotify.status(text)

    # -- run -----------------------------------------------------------------------------
    def run(self) -> int:
        self.state.mkdir(parents=True, exist_ok=True)
        with InstanceLock(self.state / "daemon.lock"):
            self.journal = self._open_journal()
            if self.journal is None:
                return 0  # asked to stop while waiting for the lock
            if self.journal.recovered_from is not None:
                log.error(
                    "the journal was unreadable; kept it as %s and started a fresh one "
                    "(files already in the inboxes will be processed again)",
                    self.journal.recovered_from,
                )
            try:
                return self._serve()
            finally:
                self.journal.close()

    def _open_journal(self) -> Journal | None:
        """The journal; while another process holds it locked, say so and wait (a
        refusal would leave the user with nothing running)."""
        previous = self._install_signals()
        try:
            said = False
            while not self._stopping:
                try:
                    return Journal(self.state / "journal.db")
                except JournalLocked as exc:
                    if not said:
                        log.error("%s; waiting for it to be released", exc)
                        said = True
                    self._wake.wait(JOURNAL_RETRY)
                    self._wake.clear()
            return None
        finally:
            self._restore_signals(previous)

    def _serve(self) -> int:
        daemon_cfg = self.config.daemon
        workers = daemon_cfg.workers or os.cpu_count() or 1
        self.pool = WorkerPool(
            workers,
            memory_limit=int(self.config.limits.worker_memory),
            initializer=worker_setup,
            preload=ENGINE,
        )
        self.dispatcher = Dispatcher(
            self.journal,
            self.pool,
            self.queue,
            lambda: self.config,
            in_flight=workers * 2,
            on_report=self._on_report,
            on_journal_lost=self._journal_lost,
        )
        self.dispatcher.paused = self.toggles.paused
        self.watcher = InboxWatcher(
            [],
            self.queue.put,
            quiet=daemon_cfg.settle_seconds,
            ignore=self._ignore,
            known=self.dispatcher.known,
            on_overflow=self._overflow,
            on_inbox_lost=self._lost,
            on_inbox_back=self._back,
        )
        self.control = ControlServer(socket_path(self.env), self.handle)
        confwatch = ConfigFileWatcher(self.loaded.source, self.request_reload)
        previous = self._install_signals()
        try:
            self.dispatcher.start()
            recover(self.journal, self.config, self._rerun)
            self.watcher.start()
            self._apply_watches()
            self.watcher.rescan()
            confwatch.start()
            self.control.start()  # answering status means: inboxes exist and are watched
            inboxes = ", ".join(str(w.inbox) for w in self.watches()) or "no inboxes"
            log.info(
                "amberpicd %s watching %s with %d workers; config: %s",
                __version__,
                inboxes,
                workers,
                self.loaded.source or "embedded default (`amberpicd init` writes one to edit)",
            )
            sdnotify.ready(f"watching {inboxes}")
            self.desktop.start()
            self._main_loop()
        finally:
            sdnotify.stopping()
            self.desktop.stop()
            log.info("stopping")
            confwatch.stop()
            self.watcher.stop()
            # Drain: jobs in flight are committed within the grace; then the pool kills what
            # is left and the temps of those cut short are removed (they rerun at next start).
            self.dispatcher.stop(timeout=daemon_cfg.shutdown_grace)
            self.pool.close(wait=True, cancel_pending=True, grace=0)
            self.dispatcher.abandon()
            self.control.stop()
            self._restore_signals(previous)
        return 0

    def _journal_lost(self, problem: str) -> None:
        self.journal_lost = problem
        self._notify_status()

    def _rerun(self, job) -> None:
        watch = self.config.watch_for(job.source)
        if watch is None:
            self.journal.fail(job.id, f"{job.source.name}: no inbox holds it any more")
            return
        file_job, originals = job_for(self.config, watch, job.source, str(job.id))
        key = (job.content_hash, job.fingerprint)
        self.dispatcher.resubmit(job.id, file_job, originals, watch, key)

    def _main_loop(self) -> None:
        watchdog = sdnotify.Watchdog(self.env)
        while not self._stopping:
            # Bounded: a signal handler only sets a flag (below), which this sees within TICK.
            self._wake.wait(min(watchdog.interval or TICK, TICK))
            self._wake.clear()
            watchdog.feed(self.dispatcher.heartbeat)  # only while the dispatcher goes round
            if self._reload_now and not self._stopping:
                # Editors save in several steps: reload once the file has been quiet a moment.
                while self._wake.wait(RELOAD_SETTLE) and not self._stopping:
                    self._wake.clear()
                self._reload_now = False
                self.reload()

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}

        # Flags only: a handler runs on the main thread between any two bytecodes, maybe while
        # it holds _wake's lock, and Event.set() there would deadlock (SIGTERM twice did).
        def stop(signum, frame) -> None:
            self._stopping = True

        def hup(signum, frame) -> None:
            self._reload_now = True

        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)
        return previous

    def _restore_signals(self, previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def run_daemon(config_path: Path | None, tray: bool = True) -> int:
    try:
        return Daemon(config_path, tray=tray).run()
    except AmberpicError as exc:
        log.error("%s", exc)
        return 1
