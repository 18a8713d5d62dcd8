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
from amberpicd.errors import FileError
from amberpicd.journal import Job, Journal
from amberpicd.originals import handle_original
from amberpicd.output.template import fixed_root
from amberpicd.output.writer import TEMP_PREFIX, TEMP_SUFFIX, StagedOutput, publish

log = logging.getLogger("amberpicd")


def sweep_temps(roots: set[Path], tag: str) -> int:
    """Remove staged temp files of job ``tag`` below ``roots``; returns how many."""
    prefix, removed = f"{TEMP_PREFIX}{tag}-", 0
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
                    Path(folder, name).unlink(missing_ok=True)
                    removed += 1
    return removed


def _publish_remaining(journal: Journal, job: Job) -> list[Path]:
    outputs: list[Path] = []
    for n, out in enumerate(journal.staged_outputs(job.id)):
        if out.temp.exists():
            staged = StagedOutput(out.temp, out.final, out.on_conflict)
            name = publish(staged, lambda p, n=n: journal.mark_published(job.id, n, p))
        else:  # published before the crash, under the name noted just before linking
            name = out.published or (out.final if out.final.exists() else None)
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
                journal.published(job.id, _publish_remaining(journal, job))
            _original(config, job)
            journal.finish(job.id)
        except (FileError, OSError) as exc:
            journal.fail(job.id, str(exc))
            log.error("%s", exc)
    return len(jobs)
