"""The daemon's worker loop: queue → decide from the journal → worker pool → commit.

A file is its path and its content. Taking a path costs one lstat and two indexed journal
queries: the stat cache gives the content hash of a file whose identity a worker already
hashed, and a decision for (path, hash, rules) means nothing is to be done. Files are never
read here: a worker reads each file once, hashes the bytes it decodes, and the hash and
identity it reports are what the journal records. One job per path is in flight at a time;
a path taken again meanwhile is looked at again when its job ends.

One thread does all journal writes and commits, in the order each job's steps happen:
begin → (worker reads, stages outputs) → identify → stage → publish → published → original
→ finish. Slow work (read, decode, encode, fsync of outputs) happens in the worker processes.

A journal that cannot be written (disk full, deleted or replaced) never loses a file: the
path waits in front of the queue and is taken again every JOURNAL_RETRY seconds, and the
error is ``journal_error`` (status shows it) until a write succeeds. ``stop(grace)`` drains:
no new work, jobs in flight are committed until the grace ends. ``heartbeat`` is when the loop
last went round (at least every HEARTBEAT seconds): the systemd watchdog is fed from it.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, replace
from pathlib import Path

from amberpicd.config.schema import Config, Watch
from amberpicd.daemon.recovery import original_step, sweep_temps
from amberpicd.engine.commit import OriginalsPolicy, Report, finish_original
from amberpicd.engine.pipeline import FileJob, FileResult, collect, run
from amberpicd.engine.recording import discard_staged as _discard_staged
from amberpicd.engine.recording import end, known_decision, outputs_intact, record
from amberpicd.errors import JournalError, JournalGone, printable
from amberpicd.fs.confined import within
from amberpicd.fs.identity import FileIdentity
from amberpicd.journal import Job, Journal
from amberpicd.output.template import fixed_root
from amberpicd.rules.fingerprint import fingerprint
from amberpicd.workers.child import POOL_WORKER
from amberpicd.workers.pool import WorkerPool

log = logging.getLogger("amberpicd")
HEARTBEAT = 1.0  # seconds: the loop goes round at least this often, even when idle
JOURNAL_RETRY = 2.0  # seconds between attempts to write a journal that failed
JOURNAL_CHECK = 2.0  # seconds between checks that the journal file is still ours


@dataclass
class Running:
    job_id: int
    job: FileJob
    originals: OriginalsPolicy
    watch: Watch
    key: object = None  # unused; kept for callers of resubmit


def job_for(config: Config, watch: Watch, path: Path, tag: str) -> tuple[FileJob, OriginalsPolicy]:
    rel = path.parent.relative_to(watch.inbox)
    job = FileJob(
        path=path,
        rules=config.rules_for(watch),
        limits=config.limits_for(watch),
        relpath="" if rel == Path(".") else rel.as_posix(),
        tag=tag,
        roots=config.folders(),
    )
    return job, OriginalsPolicy(watch.originals, watch.archive, config.folders())


class Dispatcher:
    """Takes paths from ``queue``, runs them in ``pool``, records them in ``journal``."""

    def __init__(
        self,
        journal: Journal,
        pool: WorkerPool,
        queue,
        config: Callable[[], Config],
        *,
        in_flight: int,
        on_report: Callable[[Report], None] = lambda r: None,
        on_journal_lost: Callable[[str], None] = lambda problem: None,
    ):
        self.journal, self.pool, self.queue, self.config = journal, pool, queue, config
        self.limit = max(1, in_flight)
        self.on_report = on_report
        self.on_journal_lost = on_journal_lost
        self.paused = False
        self.running: dict[int, Running] = {}
        self.journal_error: str | None = None  # the journal cannot be written now: why
        self.heartbeat = time.monotonic()
        self._done: deque[tuple[Running, Future[FileResult]]] = deque()
        self._paths: set[Path] = set()  # sources with a job in flight: one job per path
        self._again: set[Path] = set()  # taken while in flight: taken again when it ends
        self._later: list[tuple[float, Path]] = []  # (monotonic time, path): re-take then
        self._fps: dict[Path, str] = {}  # fingerprints of the current config's inboxes
        self._fps_of: Config | None = None
        self._calls: deque[Callable[[], None]] = deque()  # run on the loop's thread
        self._held: deque[Path] = deque()  # taken, but the journal could not record them
        self._orphans: list[int] = []  # their jobs, left unfinished: superseded once it heals
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._journal_retry_at = 0.0
        self._journal_checked = 0.0
        self._writes_at_error = 0
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking work; commit what is in flight for up to ``timeout`` seconds."""
        self._drain_until = time.monotonic() + (timeout or 0.0)
        self._stop.set()
        self.queue.changed.set()
        if self._thread.is_alive():
            self._thread.join(None if timeout is None else timeout + 10.0)

    def abandon(self) -> int:
        """After the pool is closed: remove the temps of jobs the shutdown cut short (they
        stay ``running`` in the journal and are finished at the next start)."""
        for item in list(self.running.values()):
            _sweep(item.job)
            log.info(
                "%s: cut short by the shutdown; finished at the next start",
                printable(item.job.path.name),
            )
        return len(self.running)

    def wake(self) -> None:
        self.queue.changed.set()

    @property
    def waiting(self) -> int:
        """Files taken from the queue that wait for the journal to be writable again."""
        return len(self._held)

    @property
    def busy(self) -> bool:
        queued = len(self.queue) + len(self._held) > 0 or bool(self._later)
        return bool(self.running) or (queued and not self.paused)

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
        if job.path in self._paths:  # two jobs of one file left running: the later one
            self.journal.supersede(job_id, "another job of this file was finished instead")
            self._again.add(job.path)  # looked at again once that one ends
            return
        done = self.journal.decided_hashes(job.path, fingerprint(job.rules))
        self._submit(Running(job_id, replace(job, done_hashes=done), originals, watch))

    def resume_original(self, job: Job) -> None:
        """Run only the original step of ``job`` (state published: ``retry`` of an
        original_failed job), on the loop's thread like every other commit."""
        self._calls.append(lambda: self._resume(job))
        self.queue.changed.set()

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            self.queue.changed.clear()
            try:
                if self._round():
                    return
            except Exception:  # a bug must not end the loop: it is all the daemon does
                log.exception("dispatcher error; going on")
            wait = HEARTBEAT
            if self._later:
                wait = min(wait, max(0.0, self._later[0][0] - time.monotonic()))
            self.queue.changed.wait(wait)

    def _round(self) -> bool:
        """One go round the loop; True when a stop has drained (or run out of grace)."""
        while self._done:
            self._finish(*self._done.popleft())
        while self._calls:
            self._call(self._calls.popleft())
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:  # changed while read: settled now?
            self.queue.put(heapq.heappop(self._later)[1])
        if self._stop.is_set():
            return not self.running or time.monotonic() >= self._drain_until
        self._watch_journal()
        if self.journal_error is None or time.monotonic() >= self._journal_retry_at:
            self._take_some()
        return False

    def _call(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except JournalError as exc:
            self._journal_failed(exc)
        except Exception:  # never let one file stop the loop
            log.exception("a resumed job failed")

    def _take_some(self) -> None:
        while not self.paused and len(self.running) < self.limit and not self._stop.is_set():
            path = self._held.popleft() if self._held else self.queue.pop()
            if path is None:
                break
            try:
                self._take(path)
            except JournalError as exc:  # the file waits, in front, until it can be recorded
                self._held.appendleft(path)
                self._journal_failed(exc)
                break
            except Exception:  # never let one file stop the loop
                log.exception("%s: could not be queued", printable(path.name))
            self._journal_ok()

    # -- journal health ------------------------------------------------------------------
    def _journal_failed(self, exc: Exception) -> None:
        message = str(exc)
        self._journal_retry_at = time.monotonic() + JOURNAL_RETRY
        if self.journal_error is None:
            self._writes_at_error = self.journal.writes
            log.error(
                "journal cannot be written: %s; files wait in the queue until it can", message
            )
        self.journal_error = message

    def _journal_ok(self) -> None:
        if self.journal_error is not None and self.journal.writes > self._writes_at_error:
            log.info("the journal can be written again; going on with the queue")
            self.journal_error = None
        while self._orphans and self.journal_error is None:
            try:  # a crash before this: recovery finishes them instead (their files wait no more)
                self.journal.supersede(self._orphans[0], "its records could not be written")
            except JournalGone:
                return
            except JournalError:
                pass  # e.g. no such job in a new journal
            self._orphans.pop(0)

    def _watch_journal(self) -> None:
        now = time.monotonic()
        if now - self._journal_checked < JOURNAL_CHECK:
            return
        self._journal_checked = now
        problem = self.journal.check()
        if problem is None:
            return
        if self.journal_error != problem:
            log.error("%s: its history is lost; starting a new journal", problem)
            self.journal_error = problem
            self._journal_retry_at = now + JOURNAL_RETRY
        if self.running:
            return  # their records went with the old file: they end first (and are redone)
        try:
            self.journal.reopen()
        except JournalError as exc:
            self._journal_failed(exc)
            return
        log.error(
            "new journal at %s: files still in the inboxes are processed again; outputs"
            " already written with the same content are recognised, not written twice",
            self.journal.path,
        )
        self.journal_error = None
        self._orphans.clear()  # their records went with the old file
        self.on_journal_lost(problem)

    def _take(self, path: Path) -> None:
        config = self.config()
        watch = config.watch_for(path)
        if watch is None or not watch.enabled:
            return
        if path in self._paths:
            self._again.add(path)  # its job may be for older content: look again after it
            return
        if self.journal.is_output(path):
            log.debug("%s: one of our outputs; not taken", printable(path.name))
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("%s: cannot read: %s", printable(path.name), exc.strerror or exc)
            return
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return
        rules = config.rules_for(watch)
        fp, identity = self._fingerprint(config, watch), FileIdentity.of(st)
        earlier = known_decision(self.journal, path, fp, identity)  # no read: the stat cache
        earlier = earlier or self.journal.failed_unread(path, fp, identity)
        if earlier is not None:
            self._decided(path, earlier, logging.DEBUG)
            return
        job_id = self.journal.begin_file(
            path,
            fp,
            inbox=watch.inbox,
            identity=identity,
            originals=watch.originals,
            rules=[r.name for r in rules],
        )
        job, originals = job_for(config, watch, path, str(job_id))
        job = replace(job, done_hashes=self.journal.decided_hashes(path, fp))
        self._submit(Running(job_id, job, originals, watch))

    def known(self, paths: Sequence[Path]) -> set[Path]:
        """Of the files a rescan found, those it may pass over: each one's identity is one a
        worker hashed, and that content was decided for its path and these rules. One lstat
        per file and a few queries in all; no file is opened. Thread-safe (the watcher's
        rescans call it)."""
        config, passed = self.config(), set()
        by_watch: dict[str, list[tuple[Path, FileIdentity]]] = {}
        watches: dict[str, Watch] = {}
        for path in paths:
            watch = _deepest(watches, path, config)
            if watch is None or path in self._paths:
                continue
            watches.setdefault(str(watch.inbox), watch)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                by_watch.setdefault(str(watch.inbox), []).append((path, FileIdentity.of(st)))
        for inbox, found in by_watch.items():
            hashes = self.journal.cached_hashes([identity for _, identity in found])
            if not hashes:
                continue
            fp = self._fingerprint(config, watches[inbox])
            candidates = [(p, hashes[i]) for p, i in found if i in hashes]
            passed |= self.journal.decided_among(watches[inbox].inbox, fp, candidates)
        return passed

    def _fingerprint(self, config: Config, watch: Watch) -> str:
        # Dumping the rules costs more than the rest of a take: once per config and inbox.
        # A new dict per config, never cleared: the watcher's rescans read it too.
        if self._fps_of is not config:
            self._fps, self._fps_of = {}, config
        memo = self._fps
        fp = memo.get(watch.inbox)
        if fp is None:
            fp = memo[watch.inbox] = fingerprint(config.rules_for(watch))
        return fp

    @staticmethod
    def _decided(path: Path, earlier, level: int = logging.INFO) -> None:
        name = printable(path.name)
        if earlier.state == "failed":
            log.debug("%s: failed before (%s); `amberpicd retry` tries again", name, earlier.error)
        else:
            log.log(level, "%s: already processed (same name, content and rules)", name)

    def _submit(self, item: Running) -> None:
        self.running[item.job_id] = item
        self._paths.add(item.job.path)
        future = self.pool.submit(run, item.job, POOL_WORKER, timeout=item.job.limits.job_timeout)

        def done(f: Future[FileResult], item: Running = item) -> None:
            self._done.append((item, f))
            self.queue.changed.set()

        future.add_done_callback(done)

    def _finish(self, item: Running, future: Future[FileResult]) -> None:
        job = item.job
        result = collect(future, job)
        if _lost(future):  # the worker died (timeout, crash, OOM) with its temps on disk
            _sweep(job)
        started = time.monotonic()
        try:
            if not self._learn(item, result):
                return  # nothing (more) to commit for this file
            report = self._record(item, result)
        except JournalError as exc:  # nothing lost: the file is done again once it can be
            _discard_staged(result)  # e.g. the journal could not note what was read
            self._held.append(job.path)
            self._orphans.append(item.job_id)
            self._journal_failed(exc)
            return
        except Exception as exc:  # a bug: say so, keep running
            name = printable(job.path.name)
            log.exception("%s: could not be recorded", name)
            report = Report(job.path, "failed", error=f"{name}: journal: {exc}")
        finally:  # in flight until committed: status says idle only once it is
            self.running.pop(item.job_id, None)
            self._release(item.job.path)
        self._journal_ok()
        report.seconds = result.seconds + (time.monotonic() - started)
        self.on_report(report)

    def _record(self, item: Running, result: FileResult) -> Report:
        return record(self.journal, item.job_id, item.job, item.originals, result)

    # -- what the worker found (identity) ----------------------------------------------------
    def _learn(self, item: Running, result: FileResult) -> bool:
        """Record the hash and identity of what the worker read, before anything is
        committed; False when that ends the job: the file changed while being read (taken
        again once it settles), this path with this content was decided before, or it is
        a duplicate under ``duplicates: skip`` (handled here)."""
        path, job_id = item.job.path, item.job_id
        if result.status == "changed":
            self.journal.discard(job_id)
            log.info("%s", result.error)
            settle = self.config().daemon.settle_seconds
            heapq.heappush(self._later, (time.monotonic() + settle, path))
            return False
        if not result.content_hash or result.identity is None:
            return True  # failed before the file was read whole: the take-time stat stays
        fp = fingerprint(item.job.rules)  # the rules this job ran (recovery: maybe older ones)
        earlier = self.journal.decided(path, fp, result.content_hash)
        if earlier is not None or result.status == "already":
            _discard_staged(result)
            self.journal.discard(job_id)
            if result.identity_settled:
                self.journal.remember(result.identity, result.content_hash)
            if earlier is not None:
                self._decided(path, earlier)
            else:  # decided when taken, retried since: take it again
                self._again.add(path)
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
                self.on_report(self._duplicate(item, result, *of))
                return False
            if of is not None:  # deleted or overwritten since: this copy gets outputs
                log.info(
                    "%s: same content as %s, whose outputs are gone; processed",
                    printable(path.name),
                    printable(of[1].name),
                )
        return True

    def _duplicate(self, item: Running, result: FileResult, of_id: int, of: Path) -> Report:
        """``duplicates: skip``: no outputs of its own, the originals policy still applies
        (a moved duplicate goes to the archive: nothing is stranded in the inbox)."""
        _discard_staged(result)
        job_id, path = item.job_id, item.job.path
        log.info("%s: duplicate of %s; not processed", printable(path.name), printable(of.name))
        self.journal.mark_duplicate(job_id, of_id)
        self.journal.stage(job_id, [])
        self.journal.published(job_id, [])
        report = Report(path, "skipped", rules=list(result.rules), original=path)
        finish_original(
            path, item.originals, relpath=item.job.relpath, identity=result.identity, report=report
        )
        self._end(job_id, report)
        return report

    def _release(self, path: Path) -> None:
        self._paths.discard(path)
        if path in self._again:
            self._again.discard(path)
            self.queue.put(path)

    def _end(self, job_id: int, report: Report) -> None:
        end(self.journal, job_id, report)

    def _resume(self, job: Job) -> None:
        report = original_step(self.journal, self.config(), job, retried=True)
        if report is not None:
            self.on_report(report)


def _deepest(watches: dict[str, Watch], path: Path, config: Config) -> Watch | None:
    """The watch of ``path``: the parent's inbox when it is one already seen (a rescan's
    files mostly share one), else ``config.watch_for`` (deepest inbox wins)."""
    watch = watches.get(os.path.dirname(path))
    return watch if watch is not None else config.watch_for(path)


def _sweep(job: FileJob) -> None:
    """Remove the temps ``job``'s worker staged (it is gone, so nobody else will)."""
    try:
        sweep_temps({within(fixed_root(r.output), job.roots)[0] for r in job.rules}, job.tag)
    except OSError as exc:  # e.g. an output root swapped for a link: said, and left alone
        log.error("%s: temp files not removed: %s", printable(job.path.name), exc)


def _lost(future: Future[FileResult]) -> bool:
    try:
        return future.exception(timeout=0) is not None
    except CancelledError:
        return True
