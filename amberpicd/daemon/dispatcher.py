"""The dispatch stage: settled paths from the queue → identify → the worker pool.

One thread takes paths while fewer than ``in_flight`` jobs run and the daemon is not paused,
asks the identify stage whether (and as which journal job) to run each, and submits it to the
pool; the pool's callback hands the finished future to the commit stage. One job per path is
in flight at a time (``InFlight``); a path taken again meanwhile is looked at again when its
job ends. A path another live amberpicd (an ``amberpicd process`` run) has in flight is left
to it and looked at again every BUSY_AGAIN seconds until that job ends (done: nothing to
do; its run killed: ours to take). A path the journal cannot record waits in front
(``JournalHealth.held``). Slow work
(read, hash, decode, encode, fsync of outputs) happens in the worker processes. ``heartbeat``
is when the loop last went round (at least every HEARTBEAT seconds): the systemd watchdog is
fed from it. Reads the queue, writes the journal only through identify.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from amberpicd.config.schema import Config, Watch
from amberpicd.daemon.identify import Identify, job_for
from amberpicd.daemon.inflight import InFlight, Running
from amberpicd.daemon.journal_health import JournalHealth
from amberpicd.engine.commit import OriginalsPolicy
from amberpicd.engine.job import FileJob, FileResult
from amberpicd.errors import FileBusy, JournalError, printable
from amberpicd.journal import Journal
from amberpicd.rules.fingerprint import fingerprint
from amberpicd.workers.child import run_in_pool
from amberpicd.workers.pool import WorkerPool

__all__ = ["Dispatcher", "job_for"]

log = logging.getLogger("amberpicd")
HEARTBEAT = 1.0  # seconds: the loop goes round at least this often, even when idle
BUSY_AGAIN = 2.0  # seconds: how soon a file another run has in flight is looked at again


class Dispatcher:
    """Takes paths from ``queue``, identifies them, runs them in ``pool``; ``finished`` gets
    each job's future (the commit stage)."""

    def __init__(
        self,
        journal: Journal,
        pool: WorkerPool,
        queue,
        config: Callable[[], Config],
        *,
        in_flight: int,
        finished: Callable[[Running, Future[FileResult]], None] = lambda item, f: None,
        identify: Identify | None = None,
        inflight: InFlight | None = None,
        health: JournalHealth | None = None,
    ):
        self.journal, self.pool, self.queue, self.config = journal, pool, queue, config
        self.limit = max(1, in_flight)
        self.finished = finished
        self.identify = Identify(journal, config) if identify is None else identify
        self.inflight = InFlight() if inflight is None else inflight
        self.health = JournalHealth(journal) if health is None else health
        self.paused = False
        self.recovering = False  # crash recovery waits for the journal: no file taken before it
        self._busy: set[Path] = set()  # files left to another run, said once each
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop taking work (what is in flight is the commit stage's to drain)."""
        self._stop.set()
        self.queue.changed.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def wake(self) -> None:
        self.queue.changed.set()

    @property
    def waiting(self) -> int:
        """Files taken from the queue that wait for the journal to be writable again."""
        return len(self.health.held)

    @property
    def busy(self) -> bool:
        queued = len(self.queue) + len(self.health.held) > 0
        queued = queued or self.queue.next_later() is not None
        return bool(self.inflight) or (queued and not self.paused)

    def known(self, paths: Sequence[Path]) -> set[Path]:
        """Of the files a rescan found, those it may pass over (see ``Identify.known``)."""
        return self.identify.known(paths, self.inflight.holds)

    def _fingerprint(self, config: Config, watch: Watch) -> str:
        return self.identify.fingerprint(config, watch)

    def resubmit(
        self,
        job_id: int,
        job: FileJob,
        originals: OriginalsPolicy,
        watch: Watch,
        key: object = None,
    ) -> None:
        """Run an interrupted job again under its own id (crash recovery). Its path is held
        while it runs, so the start-up rescan does not begin the same file twice."""
        if self.inflight.again_if_held(job.path):  # two jobs of one file left running
            self.journal.supersede(job_id, "another job of this file was finished instead")
            return  # the path is looked at again once that one ends
        done = self.journal.decided_hashes(job.path, fingerprint(job.rules))
        self._submit(Running(job_id, replace(job, done_hashes=done), originals, watch))

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            self.queue.changed.clear()
            try:
                self.health.watch(idle=lambda: not self.inflight)
                if self.health.may_write() and not self.recovering:
                    self._take_some()
            except Exception:  # a bug must not end the loop: it is all the daemon does
                log.exception("dispatcher error; going on")
            later = self.queue.next_later()
            self.queue.changed.wait(HEARTBEAT if later is None else min(HEARTBEAT, later))

    def _take_some(self) -> None:
        held = self.health.held
        while not self.paused and len(self.inflight) < self.limit and not self._stop.is_set():
            path = held.popleft() if held else self.queue.pop()
            if path is None:
                break
            try:
                if not self.inflight.again_if_held(path):  # maybe older content: look again
                    item = self.identify.take(path)
                    self._busy.discard(path)
                    if item is not None:
                        self._submit(item)
            except FileBusy as exc:  # the other run commits it; look again once it is done
                if path not in self._busy:
                    self._busy.add(path)
                    log.info("%s; left to it", exc)
                self.queue.put_later(path, BUSY_AGAIN)
            except JournalError as exc:  # the file waits, in front, until it can be recorded
                held.appendleft(path)
                self.health.failed(exc)
                break
            except Exception:  # never let one file stop the loop
                log.exception("%s: could not be queued", printable(path.name))
            self.health.ok()

    def _submit(self, item: Running) -> None:
        self.inflight.add(item)
        future = self.pool.submit(run_in_pool, item.job, timeout=item.job.limits.job_timeout)
        future.add_done_callback(lambda f, item=item: self.finished(item, f))
