"""The commit stage: what a worker produced becomes durable, in the order each job's steps
happen, on one thread of its own.

For each finished job: identify (record the hash and identity the worker read) → stage →
publish → published → original → finish (engine/recording and engine/commit do the steps),
then the report goes to the one result sink (``publish``). A file that changed while it was
read goes back to the queue once it has settled; a duplicate under ``duplicates: skip`` is
handled here. ``resume`` runs a published job's original step (``retry``) here too, so every
commit happens on this thread. A ``STOP`` marker starts the drain: jobs in flight are still
committed until none is left or the grace is over. Writes the journal, the output folders
(through engine/) and the originals.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future

from amberpicd.config.schema import Config
from amberpicd.daemon.identify import say_decided, sweep
from amberpicd.daemon.inflight import InFlight, Running
from amberpicd.daemon.journal_health import JournalHealth
from amberpicd.daemon.queue import PendingQueue
from amberpicd.daemon.recovery import original_step
from amberpicd.engine.commit import Report, finish_original
from amberpicd.engine.job import FileResult, collect
from amberpicd.engine.recording import discard_staged, end, outputs_intact, record
from amberpicd.errors import JournalError, printable
from amberpicd.journal import Job, Journal
from amberpicd.rules.fingerprint import fingerprint

log = logging.getLogger("amberpicd")
HEARTBEAT = 1.0  # seconds: the loop goes round at least this often, even when idle
STOP = object()  # the marker that drains the stage


class Committer:
    def __init__(
        self,
        journal: Journal,
        config: Callable[[], Config],
        inflight: InFlight,
        health: JournalHealth,
        queue_: PendingQueue,
        publish: Callable[[Report], None],
    ):
        self.journal, self.config, self.inflight, self.health = journal, config, inflight, health
        self.queue, self.publish = queue_, publish
        self.heartbeat = time.monotonic()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # holds at most the jobs in flight
        self._thread = threading.Thread(target=self._loop, name="amberpicd-commit", daemon=True)

    # -- what the other stages call ----------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def finished(self, item: Running, future: Future[FileResult]) -> None:
        """A worker's future is done (the pool's callback thread: enqueue only)."""
        self._inbox.put((item, future))

    def resume(self, job: Job) -> None:
        """Run only the original step of ``job`` (state published: ``retry`` of an
        original_failed job), on this stage's thread like every other commit."""
        self._inbox.put(job)

    def drain(self, grace: float) -> None:
        """The stop marker: commit what is in flight for up to ``grace`` seconds, then end."""
        self._inbox.put((STOP, time.monotonic() + grace))
        if self._thread.is_alive():
            self._thread.join(grace + 10.0)

    def abandon(self) -> int:
        """After the pool is closed: remove the temps of jobs the shutdown cut short (they
        stay ``running`` in the journal and are finished at the next start)."""
        items = self.inflight.items()
        for item in items:
            sweep(item.job)
            log.info(
                "%s: cut short by the shutdown; finished at the next start",
                printable(item.job.path.name),
            )
        return len(items)

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        drain_until: float | None = None
        while True:
            self.heartbeat = now = time.monotonic()
            if drain_until is not None and (
                (not self.inflight and self._inbox.empty()) or now >= drain_until
            ):
                return
            wait = HEARTBEAT if drain_until is None else min(HEARTBEAT, drain_until - now)
            try:
                message = self._inbox.get(timeout=max(0.0, wait))
            except queue.Empty:
                continue
            try:
                if isinstance(message, tuple) and message[0] is STOP:
                    drain_until = message[1]
                elif isinstance(message, tuple):
                    self._finish(*message)
                else:
                    self._resume(message)
            except JournalError as exc:
                self.health.failed(exc)
            except Exception:  # a bug must not end the loop: it is every commit
                log.exception("commit error; going on")

    def _finish(self, item: Running, future: Future[FileResult]) -> None:
        job = item.job
        result = collect(future, job)
        if _lost(future):  # the worker died (timeout, crash, OOM) with its temps on disk
            sweep(job)
        started = time.monotonic()
        try:
            if not self._learn(item, result):
                return  # nothing (more) to commit for this file
            report = record(self.journal, item.job_id, item.job, item.originals, result)
        except JournalError as exc:  # nothing lost: the file is done again once it can be
            discard_staged(result)  # e.g. the journal could not note what was read
            self.health.held.append(job.path)
            self.health.failed(exc, orphan=item.job_id)
            return
        except Exception as exc:  # a bug: say so, keep running
            name = printable(job.path.name)
            log.exception("%s: could not be recorded", name)
            report = Report(job.path, "failed", error=f"{name}: journal: {exc}")
        finally:
            if self.inflight.release(item):
                self.queue.put(job.path)
            self.queue.changed.set()  # a place is free: the dispatch stage takes the next
        self.health.ok()
        report.seconds = result.seconds + (time.monotonic() - started)
        self.publish(report)

    def _learn(self, item: Running, result: FileResult) -> bool:
        """Record the hash and identity of what the worker read, before anything is
        committed; False when that ends the job: the file changed while being read (taken
        again once it settles), this path with this content was decided before, or it is
        a duplicate under ``duplicates: skip`` (handled here)."""
        path, job_id = item.job.path, item.job_id
        if result.status == "changed":
            self.journal.discard(job_id)
            log.info("%s", result.error)
            self.queue.put_later(path, self.config().daemon.settle_seconds)
            return False
        if not result.content_hash or result.identity is None:
            return True  # failed before the file was read whole: the take-time stat stays
        fp = fingerprint(item.job.rules)  # the rules this job ran (recovery: maybe older ones)
        earlier = self.journal.decided(path, fp, result.content_hash)
        if earlier is not None or result.status == "already":
            discard_staged(result)
            self.journal.discard(job_id)
            if result.identity_settled:
                self.journal.remember(result.identity, result.content_hash)
            if earlier is not None:
                say_decided(path, earlier)
            else:  # decided when taken, retried since: take it again
                self.inflight.again(path)
            return False
        self.journal.identify(
            job_id,
            result.content_hash,
            result.identity,
            fingerprint=fp,
            cache=result.identity_settled,
        )
        if item.watch.duplicates == "skip" and result.status == "staged":
            of = self.journal.duplicate_of(result.content_hash, fp, path)
            if of is not None and outputs_intact(self.journal.get(of[0])):
                self.publish(self._duplicate(item, result, *of))
                return False
            if of is not None:  # deleted or overwritten since: this copy gets outputs
                log.info(
                    "%s: same content as %s, whose outputs are gone; processed",
                    printable(path.name),
                    printable(of[1].name),
                )
        return True

    def _duplicate(self, item: Running, result: FileResult, of_id: int, of) -> Report:
        """``duplicates: skip``: no outputs of its own, the originals policy still applies
        (a moved duplicate goes to the archive: nothing is stranded in the inbox)."""
        discard_staged(result)
        job_id, path = item.job_id, item.job.path
        log.info("%s: duplicate of %s; not processed", printable(path.name), printable(of.name))
        self.journal.mark_duplicate(job_id, of_id)
        self.journal.stage(job_id, [])
        self.journal.published(job_id, [])
        report = Report(path, "skipped", rules=list(result.rules), original=path)
        finish_original(
            path, item.originals, relpath=item.job.relpath, identity=result.identity, report=report
        )
        end(self.journal, job_id, report)
        return report

    def _resume(self, job: Job) -> None:
        report = original_step(self.journal, self.config(), job, retried=True)
        if report is not None:
            self.publish(report)


def _lost(future: Future[FileResult]) -> bool:
    try:
        return future.exception(timeout=0) is not None
    except CancelledError:
        return True
