"""Finishing what a crash interrupted, before the daemon takes new work.

    running    the worker may have left temp files: remove them, run the job again
    staged     publish the temps that still exist; the rest were published already
    published  handle the original, then done
Every step is idempotent, so a crash during recovery is recovered the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from amberpicd.config.schema import Config
from amberpicd.errors import FileError, OutputError
from amberpicd.fs.confined import SymlinkRefused, open_dir
from amberpicd.journal import Job, Journal
from amberpicd.originals import handle_original
from amberpicd.output.template import fixed_root
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
    """The deepest output root ``final`` lies in (None: no rule's root now; its own
    folder is then the confinement root)."""
    inside = [r for r in roots if final.parent.is_relative_to(r)]
    return max(inside, key=lambda r: len(r.parts)) if inside else None


def _publish_remaining(journal: Journal, job: Job, roots: set[Path]) -> list[Path]:
    outputs: list[Path] = []
    for n, out in enumerate(journal.staged_outputs(job.id)):
        staged = StagedOutput(out.temp, out.final, out.on_conflict, root_for(out.final, roots))
        if present(staged, out.temp):
            name = publish(staged, lambda p, n=n: journal.mark_published(job.id, n, p))
        else:  # published before the crash, under the name noted just before linking
            name = out.published or (out.final if present(staged, out.final) else None)
        if name is not None:
            outputs.append(name)
    return outputs


def _original(config: Config, job: Job) -> None:
    watch = config.watch_for(job.source)
    if watch is None or watch.originals == "keep" or not job.source.exists():
        return
    rel = job.source.parent.relative_to(watch.inbox)
    handle_original(
        job.source,
        watch.originals,
        archive=watch.archive,
        relpath="" if rel == Path(".") else rel.as_posix(),
        identity=job.identity,
    )


def recover(journal: Journal, config: Config, rerun) -> int:
    """Bring every unfinished job to an end; ``rerun(job)`` resubmits a running one.
    Returns how many jobs were recovered."""
    jobs = journal.unfinished()
    roots = {fixed_root(r.output) for r in config.rules}
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
                journal.published(job.id, _publish_remaining(journal, job, roots))
            _original(config, job)
            journal.finish(job.id)
        except SymlinkRefused as exc:  # one line naming the file and the folder refused
            journal.fail(job.id, str(OutputError(job.source, str(exc))))
            log.error("%s", OutputError(job.source, str(exc)))
        except (FileError, OSError) as exc:
            journal.fail(job.id, str(exc))
            log.error("%s", exc)
    return len(jobs)
