"""The daemon's worker loop: queue → dedupe against the journal → worker pool → commit.

One thread does all journal writes and commits, in the order each job's steps happen:
begin → (worker stages outputs) → stage → publish → published → original → finish.
Slow work (decode, encode, fsync of outputs) happens in the worker processes.

A journal that cannot be written (disk full, deleted or replaced) never loses a file: the
path waits in front of the queue and is taken again every JOURNAL_RETRY seconds, and the
error is ``journal_error`` (status shows it) until a write succeeds. ``stop(grace)`` drains:
no new work, jobs in flight are committed until the grace ends. ``heartbeat`` is when the loop
last went round (at least every HEARTBEAT seconds): the systemd watchdog is fed from it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from pathlib import Path

from amberpicd.commit import OriginalsPolicy, Report, commit
from amberpicd.config.schema import Config, Watch
from amberpicd.daemon.recovery import original_step, sweep_temps
from amberpicd.errors import JournalError, JournalGone, printable
from amberpicd.journal import Job, Journal
from amberpicd.journal import StagedOutput as JournalStaged
from amberpicd.output.template import fixed_root
from amberpicd.pipeline import FileJob, FileResult, collect, run
from amberpicd.rules.fingerprint import fingerprint
from amberpicd.workers import WorkerPool

log = logging.getLogger("amberpicd")
_CHUNK = 1 << 20
HEARTBEAT = 1.0  # seconds: the loop goes round at least this often, even when idle
JOURNAL_RETRY = 2.0  # seconds between attempts to write a journal that failed
JOURNAL_CHECK = 2.0  # seconds between checks that the journal file is still ours


def content_hash(path: Path) -> str:
    """sha256 of a regular file, read without following links or blocking on FIFOs."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path.name}: not a regular file")
        digest = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Running:
    job_id: int
    job: FileJob
    originals: OriginalsPolicy
    watch: Watch
    key: tuple[str, str] | None = None  # (content hash, fingerprint) while in flight


class JournalRecorder:
    """Tells the journal each step of a commit before the next one happens."""

    def __init__(self, journal: Journal, job_id: int, source: Path | None = None):
        self.journal, self.job_id, self.source = journal, job_id, source

    def staged(self, result: FileResult) -> None:
        outputs = [
            JournalStaged(o.staged.temp, o.staged.final, o.staged.on_conflict)
            for o in result.outputs
            if o.staged is not None
        ]
        self.journal.stage(self.job_id, outputs)

    def publishing(self, n: int, name: Path) -> None:
        self.journal.mark_published(self.job_id, n, name)

    def published(self, outputs: list[Path]) -> None:
        self.journal.published(self.job_id, outputs)

    def foreign(self, path: Path) -> bool:
        sources = self.journal.output_sources(path)
        return bool(sources - {self.source}) if self.source is not None else bool(sources)


def job_for(config: Config, watch: Watch, path: Path, tag: str) -> tuple[FileJob, OriginalsPolicy]:
    rel = path.parent.relative_to(watch.inbox)
    job = FileJob(
        path=path,
        rules=config.rules_for(watch),
        limits=config.limits_for(watch),
        relpath="" if rel == Path(".") else rel.as_posix(),
        tag=tag,
    )
    return job, OriginalsPolicy(watch.originals, watch.archive)


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
        self._calls: deque[Callable[[], None]] = deque()  # run on the loop's thread
        self._held: deque[Path] = deque()  # taken, but the journal could not record them
        self._orphans: list[int] = []  # their jobs, left unfinished: superseded once it heals
        self._keys: set[tuple[str, str]] = set()
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
        queued = len(self.queue) + len(self._held)
        return bool(self.running) or (queued > 0 and not self.paused)

    def resubmit(
        self,
        job_id: int,
        job: FileJob,
        originals: OriginalsPolicy,
        watch: Watch,
        key: tuple[str, str],
    ) -> None:
        """Run an interrupted job again under its own id (crash recovery). Its key is
        held while it runs, so the start-up rescan does not begin the same file twice."""
        self._submit(Running(job_id, job, originals, watch, key))

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
            self.queue.changed.wait(HEARTBEAT)

    def _round(self) -> bool:
        """One go round the loop; True when a stop has drained (or run out of grace)."""
        while self._done:
            self._finish(*self._done.popleft())
        while self._calls:
            self._call(self._calls.popleft())
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
        if self.journal.is_output(path):
            log.debug("%s: one of our outputs; not taken", path.name)
            return
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                return
            digest = content_hash(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("%s: cannot read: %s", path.name, exc.strerror or exc)
            return
        rules = config.rules_for(watch)
        key = (digest, fingerprint(rules))
        earlier = self.journal.decision(*key)
        if earlier is not None or key in self._keys:
            if earlier is not None and earlier.state == "failed":
                log.debug(
                    "%s: failed before (%s); `amberpicd retry` tries again",
                    path.name,
                    earlier.error,
                )
            else:
                log.info("%s: already processed (same content and rules)", path.name)
            return
        job_id = self.journal.begin(
            path,
            *key,
            inbox=watch.inbox,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            rules=[r.name for r in rules],
        )
        job, originals = job_for(config, watch, path, str(job_id))
        self._submit(Running(job_id, job, originals, watch, key))

    def _submit(self, item: Running) -> None:
        self.running[item.job_id] = item
        if item.key is not None:
            self._keys.add(item.key)
        future = self.pool.submit(run, item.job, timeout=item.job.limits.job_timeout)

        def done(f: Future[FileResult], item: Running = item) -> None:
            self._done.append((item, f))
            self.queue.changed.set()

        future.add_done_callback(done)

    def _finish(self, item: Running, future: Future[FileResult]) -> None:
        self.running.pop(item.job_id, None)
        job = item.job
        result = collect(future, job)
        if _lost(future):  # the worker died (timeout, crash, OOM) with its temps on disk
            _sweep(job)
        started = time.monotonic()
        try:
            report = self._record(item, result)
        except JournalError as exc:  # nothing lost: the file is done again once it can be
            self._held.append(job.path)
            self._orphans.append(item.job_id)
            self._journal_failed(exc)
            return
        except Exception as exc:  # a bug: say so, keep running
            name = printable(job.path.name)
            log.exception("%s: could not be recorded", name)
            report = Report(job.path, "failed", error=f"{name}: journal: {exc}")
        finally:
            self._keys.discard(item.key)  # type: ignore[arg-type]
        self._journal_ok()
        report.seconds = result.seconds + (time.monotonic() - started)
        self.on_report(report)

    def _record(self, item: Running, result: FileResult) -> Report:
        if result.status in ("unmatched", "skipped"):  # skipped: not an image
            self.journal.no_match(item.job_id)
            return Report(result.path, result.status, error=result.error, seconds=result.seconds)
        if result.status == "failed":
            self.journal.fail(item.job_id, result.error or "failed")
            return Report(result.path, "failed", error=result.error, rules=result.rules)
        report = commit(
            result,
            item.originals,
            relpath=item.job.relpath,
            recorder=JournalRecorder(self.journal, item.job_id, item.job.path),
        )
        self._end(item.job_id, report)
        return report

    def _end(self, job_id: int, report: Report) -> None:
        if report.status == "failed" and report.step == "original":
            self.journal.original_failed(job_id, report.error or "failed")
        elif report.status == "failed":
            self.journal.fail(job_id, report.error or "failed")
        else:
            self.journal.finish(job_id)

    def _resume(self, job: Job) -> None:
        report = original_step(self.journal, self.config(), job)
        if report is not None:
            self.on_report(report)


def _sweep(job: FileJob) -> None:
    """Remove the temps ``job``'s worker staged (it is gone, so nobody else will)."""
    try:
        sweep_temps({fixed_root(rule.output) for rule in job.rules}, job.tag)
    except OSError as exc:  # e.g. an output root swapped for a link: said, and left alone
        log.error("%s: temp files not removed: %s", printable(job.path.name), exc)


def _lost(future: Future[FileResult]) -> bool:
    try:
        return future.exception(timeout=0) is not None
    except CancelledError:
        return True
