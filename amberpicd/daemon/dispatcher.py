"""The daemon's worker loop: queue → dedupe against the journal → worker pool → commit.

One thread does all journal writes and commits, in the order each job's steps happen:
begin → (worker stages outputs) → stage → publish → published → original → finish.
Slow work (decode, encode, fsync of outputs) happens in the worker processes.
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
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from amberpicd.commit import OriginalsPolicy, Report, commit
from amberpicd.config.schema import Config, Watch
from amberpicd.errors import printable
from amberpicd.journal import Journal
from amberpicd.journal import StagedOutput as JournalStaged
from amberpicd.pipeline import FileJob, FileResult, collect, run
from amberpicd.rules.fingerprint import fingerprint
from amberpicd.workers import WorkerPool

log = logging.getLogger("amberpicd")
_CHUNK = 1 << 20


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

    def __init__(self, journal: Journal, job_id: int):
        self.journal, self.job_id = journal, job_id

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
    ):
        self.journal, self.pool, self.queue, self.config = journal, pool, queue, config
        self.limit = max(1, in_flight)
        self.on_report = on_report
        self.paused = False
        self.running: dict[int, Running] = {}
        self._done: deque[tuple[Running, Future[FileResult]]] = deque()
        self._keys: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self.queue.changed.set()
        self._thread.join(timeout)

    def wake(self) -> None:
        self.queue.changed.set()

    @property
    def busy(self) -> bool:
        return bool(self.running) or (len(self.queue) > 0 and not self.paused)

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

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self.queue.changed.clear()
            while self._done:
                self._finish(*self._done.popleft())
            while not self.paused and len(self.running) < self.limit and not self._stop.is_set():
                path = self.queue.pop()
                if path is None:
                    break
                try:
                    self._take(path)
                except Exception:  # never let one file stop the loop
                    log.exception("%s: could not be queued", path.name)
            self.queue.changed.wait()

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
        started = time.monotonic()
        try:
            report = self._record(item, result)
        except Exception as exc:  # the journal itself failed: say so, keep running
            name = printable(job.path.name)
            log.exception("%s: could not be recorded", name)
            report = Report(job.path, "failed", error=f"{name}: journal: {exc}")
        finally:
            self._keys.discard(item.key)  # type: ignore[arg-type]
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
            recorder=JournalRecorder(self.journal, item.job_id),
        )
        if report.status == "failed":
            self.journal.fail(item.job_id, report.error or "failed")
        else:
            self.journal.finish(item.job_id)
        return report
