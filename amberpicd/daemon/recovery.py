"""Finishing what a crash interrupted, before the daemon takes new work.

    running    the worker may have left temp files: remove them, run the job again
    staged     publish the temps again (all still exist until published is recorded); a
               temp gone: its output is where the journal noted it if that holds the bytes
               staged (their sha256), else run the job again (found by bytes and age)
    published  handle the original, then done (or original_failed, which `retry` resumes)
    undoing    an undo cut short: its steps again (engine/undo.py), then undone
Every step is idempotent, so a crash during recovery is recovered the same way.
``original_step`` is also what `retry` runs for an original_failed job: the original step
alone, never the pipeline again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from amberpicd.config.schema import Config
from amberpicd.engine.commit import OriginalsPolicy, Report, crash_point, finish_original
from amberpicd.engine.originals import aside_path
from amberpicd.engine.restore import digest
from amberpicd.errors import FileError, JournalError, OutputError, error_text, printable
from amberpicd.fs.confined import SymlinkRefused, within
from amberpicd.journal import Job, Journal
from amberpicd.journal import StagedOutput as JournalStaged
from amberpicd.output.writer import StagedOutput, present, publish, sweep_temps

log = logging.getLogger("amberpicd")


def root_for(final: Path, roots: set[Path]) -> Path | None:
    """The outermost configured folder ``final`` lies in (None: none now; its own folder
    is then the confinement root), as the worker staged it (``fs.confined.within``)."""
    top, _ = within(final.parent, roots)
    return top if top != final.parent or final.parent in roots else None


def _publish_remaining(journal: Journal, job: Job, roots: set[Path]) -> list[Path] | None:
    """Publish the staged temps again (idempotent: a name already linked to a temp is
    found); returns every output published, or None when a temp is gone and where its
    output went is not known. Every temp stays until the journal records published
    (output.writer.publish), so a gone one was discarded by a commit that failed, or renamed
    into place where hard links do not work: the name noted before its link may hold
    another file, and counts only when it holds exactly the bytes staged (_noted)."""
    rows = journal.staged_outputs(job.id)
    staged = [StagedOutput(r.temp, r.final, r.on_conflict, root_for(r.final, roots)) for r in rows]
    gone = {n: out for n, out in enumerate(staged) if not present(out, out.temp)}
    found = {n: _noted(journal, job, rows[n], out) for n, out in gone.items()}
    if None in found.values():
        return None
    outputs: list[Path] = []
    for n, out in enumerate(staged):
        name = (
            found[n]
            if n in found
            else publish(out, lambda p, n=n: journal.mark_published(job.id, n, p))
        )
        if name is not None:
            outputs.append(name)
    return outputs


def _noted(journal: Journal, job: Job, row: JournalStaged, out: StagedOutput) -> Path | None:
    """Where a gone temp's output went, when the journal can tell: the name noted before its
    link holds exactly the bytes staged (the sha256 recorded with them) and no other file's
    job wrote it. Then the temp was renamed there (no hard links), whatever the file's ctime
    did since. None (run the job again) when no hash is known or the bytes differ."""
    if not row.sha256 or row.published is None:
        return None
    if journal.output_sources(row.published) - {job.source}:
        return None
    try:
        with out.folder() as folder:
            held = digest(folder, row.published.name)
    except OSError:
        return None
    return row.published if held == row.sha256 else None


def _holds_its_content(job: Job) -> bool:
    """Whether the file at ``job.source`` (or put aside by a delete cut short) is still the
    one whose content the job processed (same identity, or the same bytes)."""
    try:
        st = os.lstat(job.source)
    except FileNotFoundError:
        return os.path.lexists(aside_path(job.source))
    except OSError:
        return True  # the original step says what is wrong, in its own words
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    return job.identity.matches(st) or job.identity.same_content(
        st, lambda: os.open(job.source, flags)
    )


def original_step(
    journal: Journal, config: Config, job: Job, *, retried: bool = False
) -> Report | None:
    """Handle the original of ``job`` (state published), then record done or
    original_failed. Returns the report to show, or None when there is nothing to say.
    ``retried`` (``retry`` of an original_failed job): a file replaced or removed since is
    not its original any more; the job is left as history (superseded), never failed again
    at every retry, and the new content is a file of its own (the daemon takes it)."""
    if retried and not _holds_its_content(job):
        reason = (
            f"{printable(job.source.name)}: not retried: the file is no longer the one whose"
            " outputs were written (replaced or removed since)"
        )
        journal.supersede(job.id, reason)
        return Report(job.source, "skipped", error=reason, rules=list(job.rules))
    report = Report(job.source, "done", outputs=list(job.outputs), rules=list(job.rules))
    report.job_id = job.id
    report.original = job.source
    watch = config.watch_for(job.source)
    # An output skipped (on_conflict: skip, name taken) is staged but not among the outputs.
    skipped = len(journal.staged_outputs(job.id)) > len(job.outputs)
    report.kept = skipped
    if watch is None and job.originals == "keep":
        pass  # e.g. `amberpicd process` on a file outside every inbox: the original stays
    elif watch is None:
        report.status, report.step = "failed", "original"
        report.error = f"{printable(job.source.name)}: outputs written; no inbox holds it any more"
    elif skipped and watch.originals != "keep":
        report.note = f"{printable(job.source.name)}: kept the original: an output was skipped"
    elif watch.originals != "keep" and (
        os.path.lexists(job.source) or os.path.lexists(aside_path(job.source))
    ):
        rel = job.source.parent.relative_to(watch.inbox)
        finish_original(
            job.source,
            OriginalsPolicy(watch.originals, watch.archive, config.folders()),
            relpath="" if rel == Path(".") else rel.as_posix(),
            identity=job.identity,
            report=report,
        )
        crash_point("original")
    # A missing source was moved or deleted by the run that was interrupted (or by the user).
    if report.step == "original":
        journal.original_failed(job.id, report.error or "original not handled")
    else:
        journal.finish(job.id, original=report.fate, kept=report.kept)
    return report


def recover(journal: Journal, config: Config, rerun) -> int:
    """Bring every unfinished job whose owner is gone to an end; ``rerun(job)`` resubmits
    a running one.
    Returns how many jobs were recovered."""
    jobs = journal.orphaned()  # not the jobs of a live ``process`` run beside us
    roots = set(config.folders())
    for job in jobs:
        log.info("%s: finishing job %d interrupted while %s", job.source.name, job.id, job.state)
        try:
            if job.state == "running":
                sweep_temps(roots, str(job.id))
                if not job.source.exists():
                    journal.fail(job.id, f"{job.source.name}: vanished after an interruption")
                    continue
                rerun(job)
                continue
            if job.state == "staged":
                outputs = _publish_remaining(journal, job, roots)
                if outputs is None:  # run again: its outputs are recognised by their bytes
                    sweep_temps(roots, str(job.id))
                    journal.unstage(job.id)
                    if not job.source.exists():
                        journal.fail(job.id, f"{job.source.name}: vanished after an interruption")
                        continue
                    rerun(journal.get(job.id))
                    continue
                journal.published(job.id, outputs)
                job = journal.get(job.id)
            try:  # a skipped output's temp stays until published is recorded (commit.py)
                sweep_temps(roots, str(job.id))
            except OSError as exc:  # e.g. an output root swapped for a link: said, left
                log.error("%s: temp files not removed: %s", printable(job.source.name), exc)
            report = original_step(journal, config, job)
            if report is not None and report.error:
                log.error("%s", report.error)
        except JournalError as exc:  # e.g. the state disk is full: the next start retries
            log.error("%s: job %d not finished: journal: %s", job.source.name, job.id, exc)
        except SymlinkRefused as exc:  # one line naming the file and the folder refused
            journal.fail(job.id, str(OutputError(job.source, str(exc))))
            log.error("%s", OutputError(job.source, str(exc)))
            _sweep_failed(roots, job)
        except (FileError, OSError) as exc:  # e.g. the output disk full: publish failed
            error = exc if isinstance(exc, FileError) else OutputError(job.source, error_text(exc))
            journal.fail(job.id, str(error))
            log.error("%s", error)
            _sweep_failed(roots, job)
    return len(jobs) + _finish_undos(journal, config)


def _sweep_failed(roots: set[Path], job: Job) -> None:
    """A job recovery failed is never recovered again (``retry`` runs a new job, under a
    new tag): its temps go now, as a failed commit's do, or they would stay for ever."""
    try:
        sweep_temps(roots, str(job.id))
    except OSError as exc:  # e.g. an output root swapped for a link: said, left
        log.error("%s: temp files not removed: %s", printable(job.source.name), exc)


def _finish_undos(journal: Journal, config: Config) -> int:
    from amberpicd.engine.undo import resume

    try:
        reports = resume(journal, config)
    except JournalError as exc:
        log.error("undo not finished: journal: %s", exc)
        return 0
    for report in reports:
        for line in report.lines():
            (log.info if report.status == "undone" else log.error)("%s", line)
    return len(reports)
