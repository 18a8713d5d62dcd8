"""The daemon's flow, top to bottom: settle → identify → dispatch → commit → results.

``build_flow`` is the one place the stages are put together; read it first. Each stage is a
small class in a module of its own, with its own thread, and hands on through a bounded queue:

    InboxWatcher (watcher.py, settle.py)   a dropped file is complete: put its path
        │ PendingQueue (queue.py)          one entry per file, in order
    Dispatcher (dispatcher.py)             take paths while fewer than ``in_flight`` run
        │ Identify (identify.py)           decided before? else begin its journal job
        │ WorkerPool (workers/)            read, hash, decode, ops, encode, stage
        │ InFlight (inflight.py)           at most ``in_flight`` jobs, one per path
    Committer (committer.py)               identify → publish → original → finish
        │ Results (results.py)             the log, the status's recent list, notifications

A stop flows the same way: the watcher stops reporting, the dispatcher stops taking, and the
commit stage's stop marker drains what is in flight for up to the shutdown grace.
``JournalHealth`` (journal_health.py) is shared: while the journal cannot be written, files
wait for it there. The daemon (service.py) reads the flow's state for ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amberpicd.config.schema import Config, Watch
from amberpicd.daemon.committer import Committer
from amberpicd.daemon.dispatcher import Dispatcher
from amberpicd.daemon.identify import Identify
from amberpicd.daemon.inflight import InFlight, Running
from amberpicd.daemon.journal_health import JournalHealth
from amberpicd.daemon.queue import PendingQueue
from amberpicd.daemon.watcher import InboxWatcher
from amberpicd.engine.commit import OriginalsPolicy, Report
from amberpicd.engine.pipeline import FileJob
from amberpicd.journal import Job, Journal
from amberpicd.workers.pool import WorkerPool


@dataclass
class InboxEvents:
    """What the daemon does when the watcher loses an inbox, finds it back, or overflows."""

    lost: Callable[[Path], None]
    back: Callable[[Path], None]
    overflow: Callable[[], None]


def build_flow(
    journal: Journal,
    pool: WorkerPool,
    config: Callable[[], Config],
    *,
    in_flight: int,
    publish: Callable[[Report], None],
    inbox_events: InboxEvents,
    on_journal_lost: Callable[[str], None],
) -> Flow:
    queue = PendingQueue()
    inflight = InFlight()
    health = JournalHealth(journal, on_lost=on_journal_lost)
    identify = Identify(journal, config)
    commit = Committer(journal, config, inflight, health, queue, publish)
    dispatch = Dispatcher(
        journal,
        pool,
        queue,
        config,
        in_flight=in_flight,
        finished=commit.finished,
        identify=identify,
        inflight=inflight,
        health=health,
    )
    settle = InboxWatcher(
        [],
        queue.put,
        quiet=config().daemon.settle_seconds,
        ignore=journal.is_output,  # on the settle thread, never watchdog's
        known=dispatch.known,
        on_overflow=inbox_events.overflow,
        on_inbox_lost=inbox_events.lost,
        on_inbox_back=inbox_events.back,
    )
    return Flow(settle, queue, dispatch, commit, inflight, health)


@dataclass
class Flow:
    settle: InboxWatcher
    queue: PendingQueue
    dispatch: Dispatcher
    commit: Committer
    inflight: InFlight
    health: JournalHealth

    def start(self) -> None:
        """Start identify → dispatch → commit; the watcher starts once recovery is done."""
        self.commit.start()
        self.dispatch.start()

    def stop(self, grace: float) -> None:
        """The stop marker, through every stage in turn: jobs in flight are committed
        within ``grace``."""
        self.settle.stop()
        self.dispatch.stop()
        self.commit.drain(grace)

    def abandon(self) -> int:
        """After the pool is closed: sweep the temps of the jobs the stop cut short."""
        return self.commit.abandon()

    # -- the daemon's view -------------------------------------------------------------------
    @property
    def heartbeat(self) -> float:
        return min(self.dispatch.heartbeat, self.commit.heartbeat)

    @property
    def paused(self) -> bool:
        return self.dispatch.paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self.dispatch.paused = paused
        self.dispatch.wake()

    @property
    def busy(self) -> bool:
        return self.dispatch.busy or self.settle.pending() > 0

    @property
    def waiting(self) -> int:
        return self.dispatch.waiting

    @property
    def running(self) -> list[Running]:
        return self.inflight.items()

    @property
    def journal_error(self) -> str | None:
        return self.health.error

    def resubmit(
        self, job_id: int, job: FileJob, originals: OriginalsPolicy, watch: Watch, key: object
    ) -> None:
        """Run an interrupted job again under its own id (crash recovery)."""
        self.dispatch.resubmit(job_id, job, originals, watch, key)

    def resume_original(self, job: Job) -> None:
        self.commit.resume(job)
