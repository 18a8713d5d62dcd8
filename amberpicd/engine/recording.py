"""How a job's outcome reaches the journal: shared by the daemon's dispatcher and
``amberpicd process``, so both record a file in exactly the same way and each knows what
the other has done.

    known_decision  at take time, no read: the stat cache's hash → a decision for
                    (path, content, rules)
    forget          the worker found the file decided after all: its temps and job go
    identify        what the worker read (hash, identity) becomes the job's
    record          no_match / fail / commit with a ``JournalRecorder`` → finish

May touch: the journal (through its API), staged temp files (discarded), and, through
``commit``, the outputs and the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amberpicd.engine.commit import OriginalsPolicy, Report, commit
from amberpicd.engine.pipeline import FileJob, FileResult
from amberpicd.fs.identity import FileIdentity
from amberpicd.journal import Journal
from amberpicd.journal import StagedOutput as JournalStaged
from amberpicd.journal.files import Decided
from amberpicd.output.writer import discard


class JournalRecorder:
    """Tells the journal each step of a commit before the next one happens."""

    def __init__(self, journal: Journal, job_id: int, source: Path | None = None):
        self.journal, self.job_id, self.source = journal, job_id, source
        self._chosen: list[dict[str, object]] = []  # per staged output n
        self._named: dict[Path, dict[str, object]] = {}  # published name -> its choices

    def staged(self, result: FileResult) -> None:
        planned = [o for o in result.outputs if o.staged is not None]
        outputs = [
            JournalStaged(
                o.staged.temp, o.staged.final, o.staged.on_conflict, sha256=o.staged.sha256
            )
            for o in planned
            if o.staged is not None
        ]
        self._chosen = [o.chosen() for o in planned]
        self.journal.stage(self.job_id, outputs)

    def publishing(self, n: int, name: Path) -> None:
        if n < len(self._chosen):
            self._named[name] = self._chosen[n]
        self.journal.mark_published(self.job_id, n, name)

    def published(self, outputs: list[Path]) -> None:
        # The encoder's choices (quality, score) ride along in the outputs' JSON.
        chosen = [self._named.get(p, {}) for p in outputs]
        self.journal.published(self.job_id, outputs, chosen)

    def foreign(self, path: Path) -> bool:
        sources = self.journal.output_sources(path)
        return bool(sources - {self.source}) if self.source is not None else bool(sources)

    def mine(self, path: Path) -> bool:
        return self.source is not None and self.journal.published_by(path, self.source)


def known_decision(
    journal: Journal,
    path: Path,
    fp: str,
    identity: FileIdentity,
    states: Sequence[str] | None = None,
) -> Decided | None:
    """The decision that holds for the file at ``path`` under rules ``fp``, found without
    reading it: only when the stat cache knows the hash of exactly this identity.
    ``states``: which decisions count (default: the journal's, ``jobs.DECISIONS``)."""
    known = journal.cached_hash(identity)
    return journal.decided(path, fp, known, states=states) if known is not None else None


def discard_staged(result: FileResult) -> None:
    """Remove the temps a worker staged for ``result`` (through the confined folder)."""
    for out in result.outputs:
        if out.staged is not None:
            discard(out.staged)
    result.outputs.clear()


def forget(journal: Journal, job_id: int, result: FileResult) -> None:
    """The file turned out decided (or the worker stopped as ``already``): nothing of the
    job stays but the stat cache's note of what the file hashes to."""
    discard_staged(result)
    journal.discard(job_id)
    if result.identity_settled and result.identity is not None:
        journal.remember(result.identity, result.content_hash)


def identify(journal: Journal, job_id: int, result: FileResult, fp: str) -> None:
    """Record the hash and identity of what the worker read, before anything is committed."""
    assert result.identity is not None
    journal.identify(
        job_id,
        result.content_hash,
        result.identity,
        fingerprint=fp,
        cache=result.identity_settled,
    )


def end(journal: Journal, job_id: int, report: Report) -> None:
    """The job's last state, from its report."""
    if report.status == "failed" and report.step == "original":
        journal.original_failed(job_id, report.error or "failed")
    elif report.status == "failed":
        journal.fail(job_id, report.error or "failed")
    else:
        journal.finish(job_id, original=report.fate, kept=report.kept)


def record(
    journal: Journal,
    job_id: int,
    job: FileJob,
    originals: OriginalsPolicy,
    result: FileResult,
) -> Report:
    """Commit ``result`` (publish, then the original), the journal told every step."""
    if result.status in ("unmatched", "skipped"):  # skipped: not an image
        journal.no_match(job_id)
        return Report(result.path, result.status, error=result.error, seconds=result.seconds)
    if result.status == "failed":
        journal.fail(job_id, result.error or "failed")
        return Report(result.path, "failed", error=result.error, rules=result.rules)
    report = commit(
        result,
        originals,
        relpath=job.relpath,
        recorder=JournalRecorder(journal, job_id, job.path),
    )
    end(journal, job_id, report)
    return report
