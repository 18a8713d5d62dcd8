"""``amberpicd run``: owns the daemon's state (paused, inboxes, config, recent files) and its
commands, and runs it: journal, worker pool, the flow of stages, control socket, signals.

    the flow (flow.py): settle → identify → dispatch → worker pool → commit → results
    results (results.py): the log line, the recent list (status, the tray), sd_notify status,
                          the desktop session's notifications

The tray, the CLI and the control socket read ``status()`` and send commands to ``handle``;
they never reach into the engine. The desktop gets only ``handle`` and a few settings.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from amberpicd import __version__
from amberpicd.config.loader import LoadedConfig, load_config
from amberpicd.config.schema import Config, Watch
from amberpicd.daemon import sdnotify, signals
from amberpicd.daemon.confwatch import ConfigFileWatcher
from amberpicd.daemon.control import ControlServer, socket_path
from amberpicd.daemon.flow import Flow, InboxEvents, build_flow
from amberpicd.daemon.identify import job_for
from amberpicd.daemon.lock import InstanceLock
from amberpicd.daemon.recovery import recover
from amberpicd.daemon.results import Recent, Results, log_line
from amberpicd.daemon.status import activity, status
from amberpicd.daemon.toggles import Toggles
from amberpicd.desktop.session import DesktopSession
from amberpicd.errors import (
    AmberpicError,
    ConfigError,
    JournalError,
    JournalLocked,
    JournalReadOnly,
)
from amberpicd.journal import Journal
from amberpicd.paths import state_dir
from amberpicd.workers.child import engine_setup
from amberpicd.workers.pool import ENGINE, WorkerPool

log = logging.getLogger("amberpicd")
RELOAD_SETTLE = 0.3  # seconds without further config-file events before reloading
JOURNAL_RETRY = 2.0  # seconds between attempts to open a locked journal
RECOVER_RETRY, RECOVER_RETRY_MAX = 1.0, 30.0  # seconds: crash recovery's retries (doubling)
TICK = 0.5  # seconds: the main loop goes round (watchdog, flags) at least this often


class Daemon:
    def __init__(self, config_path: Path | None = None, *, env=os.environ, tray: bool = True):
        self.config_path = config_path
        self.env = env
        self.loaded: LoadedConfig = load_config(config_path, env=env)
        self.state = state_dir(env)
        self.toggles_file = self.state / "toggles.json"
        self.toggles = Toggles.load(self.toggles_file)
        self.results = Results()  # every finished file's report, once
        self.recent = Recent()  # the last files finished, read by status and the tray
        self.config_error: str | None = None
        self.generation = 0  # counts successful (re)loads
        self.lost_inboxes: set[str] = set()
        self.journal_lost: str | None = None  # the journal was deleted/replaced (until seen)
        self._recover_delay, self._recover_at = RECOVER_RETRY / 2, 0.0  # _recover's retries
        self.started = time.time()
        self._stopping = False
        self._reload_now = False
        self._wake = signals.Waker()  # the main loop sleeps on it; signal handlers wake it
        self._lock = threading.RLock()
        self.desktop = DesktopSession(  # tray icon, notifications
            self.handle,
            notify_mode=lambda: self.config.daemon.notify,
            tray_configured=lambda: self.config.daemon.tray,
            tray=tray,
            env=env,
        )
        self.results.subscribe(self.recent.add)
        self.results.subscribe(log_line)
        self.results.subscribe(lambda report: self._notify_status())
        self.results.subscribe(self.desktop.report)

    # -- state read by status, the tray and the CLI ---------------------------------------
    @property
    def config(self) -> Config:
        return self.loaded.config

    def watches(self) -> list[Watch]:
        return [
            w for w in self.config.watch if w.enabled and str(w.inbox) not in self.toggles.disabled
        ]

    def activity(self) -> str:
        return activity(self)

    def status(self) -> dict:
        return status(self)

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
                self.recent.seen()
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
        self.flow.paused = paused
        self.toggles.save(self.toggles_file)
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
            self.flow.resume_original(job)
        jobs = self.journal.retry(source)
        sources = list(dict.fromkeys(j.source for j in jobs))
        for path in sources:
            if path.exists():
                self.queue.put(path)
        self.recent.seen()
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
        queued = len(self.flow.queue) + len(self.flow.inflight)
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
        """The journal; while another process holds it locked or its filesystem is
        read-only, say so and wait (a refusal would leave the user with nothing running)."""
        previous = self._install_signals()
        try:
            said = False
            while not self._stopping:
                try:
                    return Journal(self.state / "journal.db")
                except (JournalLocked, JournalReadOnly) as exc:
                    if not said:
                        wait = "writable" if isinstance(exc, JournalReadOnly) else "released"
                        log.error("%s; waiting until it is %s", exc, wait)
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
            initializer=engine_setup,
            preload=ENGINE,
        )
        self.flow: Flow = build_flow(
            self.journal,
            self.pool,
            lambda: self.config,
            in_flight=workers * 2,
            publish=self.results.publish,
            inbox_events=InboxEvents(lost=self._lost, back=self._back, overflow=self._overflow),
            on_journal_lost=self._journal_lost,
        )
        self.flow.paused = self.toggles.paused
        self.queue, self.watcher = self.flow.queue, self.flow.settle
        self.control = ControlServer(socket_path(self.env), self.handle)
        confwatch = ConfigFileWatcher(self.loaded.source, self.request_reload)
        previous = self._install_signals()
        try:
            self.flow.start()
            self._recover()
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
            # Drain: the stop flows through the stages, jobs in flight are committed within
            # the grace; then the pool kills what is left and the temps of those cut short
            # are removed (they rerun at next start).
            self.flow.stop(grace=daemon_cfg.shutdown_grace)
            self.pool.close(wait=True, cancel_pending=True, grace=0)
            self.flow.abandon()
            self.control.stop()
            self._restore_signals(previous)
        return 0

    def _journal_lost(self, problem: str) -> None:
        self.journal_lost = problem
        self._notify_status()

    def _recover(self) -> None:
        """Crash recovery. While the journal cannot take it over (the state disk full at
        start: nothing was taken over yet), said once (log, status), the dispatcher takes no
        file, and the main loop tries again, less and less often (RECOVER_RETRY doubling up
        to RECOVER_RETRY_MAX): a file taken before its interrupted job is finished would be
        done twice."""
        try:
            recover(self.journal, self.config, self._rerun)
        except JournalError as exc:
            self.flow.health.failed(exc)
            self.flow.dispatch.recovering = True
            self._recover_delay = min(2 * self._recover_delay, RECOVER_RETRY_MAX)
            self._recover_at = time.monotonic() + self._recover_delay
            return
        self.flow.dispatch.recovering = False
        self.flow.health.ok()
        self.flow.dispatch.wake()

    def _rerun(self, job) -> None:
        watch = self.config.watch_for(job.source)
        if watch is None:
            self.journal.fail(job.id, f"{job.source.name}: no inbox holds it any more")
            return
        file_job, originals = job_for(self.config, watch, job.source, str(job.id))
        key = (job.content_hash, job.fingerprint)
        self.flow.resubmit(job.id, file_job, originals, watch, key)

    def _main_loop(self) -> None:
        watchdog = sdnotify.Watchdog(self.env)
        while not self._stopping:
            # A signal handler sets a flag and wakes this (below); TICK bounds it anyway.
            self._wake.wait(min(watchdog.interval or TICK, TICK))
            self._wake.clear()
            watchdog.feed(self.flow.heartbeat)  # only while the stages go round
            if self.flow.dispatch.recovering and time.monotonic() >= self._recover_at:
                self._recover()
            if self._reload_now and not self._stopping:
                # Editors save in several steps: reload once the file has been quiet a moment.
                while self._wake.wait(RELOAD_SETTLE) and not self._stopping:
                    self._wake.clear()
                self._reload_now = False
                self.reload()

    def _install_signals(self) -> dict:
        def stop() -> None:
            self._stopping = True
            self._wake.set()

        def reload() -> None:
            self._reload_now = True
            self._wake.set()

        return signals.install(stop, reload)

    def _restore_signals(self, previous: dict) -> None:
        signals.restore(previous)


def run_daemon(config_path: Path | None, tray: bool = True) -> int:
    try:
        return Daemon(config_path, tray=tray).run()
    except AmberpicError as exc:
        log.error("%s", exc)
        return 1
