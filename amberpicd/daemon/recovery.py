"""Finishing what a crash interrupted, before the daemon takes new work.

    running    the worker may have left temp files: remove them, run the job again
    staged     publish the temps again (all still exist until published is recorded); a
               temp gone: run the job again (its outputs are found by their bytes)
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
from amberpicd.errors import FileError, JournalError, OutputError, printable
from amberpicd.fs.confined import SymlinkRefused, open_dir, within
from amberpicd.journal import Job, Journal
from amberpicd.output.writer import TEMP_PREFIX, TEMP_SUFFIX, StagedOutput, present, publish

log = logging.getLogger("amberpicd")


def sweep_temps(roots: set[Path], tag: str) -> int:
    """Remove staged temp files of job ``tag`` below ``roots``; returns how many. Folders
    are walked by descriptor without following links, and each temp is unlinked through
    its folder's descriptor, so a folder swapped for a link mid-walk leads nowhere."""
    prefix, removed = f"{TEMP_PREFIX}{tag}-", 0
    for root in roots:
        try:
            top = open_dir(root)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with top:
            for _, _, files, fd in os.fwalk(".", dir_fd=top.fd, follow_symlinks=False):
                for name in files:
                    if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
                        try:
                            os.unlink(name, dir_fd=fd)
                        except FileNotFoundError:
                            continue
                        removed += 1
    return removed


def root_for(final: Path, roots: set[Path]) -> Path | None:
    """The outermost configured folder ``final`` lies in (None: none now; its own folder
    is then the confinement root), as the worker staged it (``fs.confined.within``)."""
    top, _ = within(final.parent, roots)
    return top if top != final.parent or final.parent in roots else None


def _publish_remaining(journal: Journal, job: Job, roots: set[Path]) -> list[Path] | None:
    """Publish the staged temps again (idempotent: a name already linked to a temp is
    found); returns every output published, or None when a temp is gone. Every temp
    stays until the journal records published (output.writer.publish), so a gone one was
    discarded by a commit that failed, or renamed into place where hard links do not work:
    the name noted before its link may hold another file, and is never trusted."""
    staged = [
        StagedOutput(out.temp, out.final, out.on_conflict, root_for(out.final, roots))
        for out in journal.staged_outputs(job.id)
    ]
    if not all(present(out, out.temp) for out in staged):
        return None
    outputs: list[Path] = []
    for n, out in enumerate(staged):
        name = publish(out, lambda p, n=n: journal.mark_published(job.id, n, p))
        if name is not None:
            outputs.append(name)
    return outputs


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
        except (FileError, OSError) as exc:
            journal.fail(job.id, str(exc))
            log.error("%s", exc)
    return len(jobs) + _finish_undos(journal, config)


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
