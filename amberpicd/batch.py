"""``amberpicd process``: run the configured rules on given files and folders, in parallel.

Uses exactly the daemon's engine: ``pipeline.run`` in worker processes, ``commit`` here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

from amberpicd.commit import OriginalsPolicy, Report, commit
from amberpicd.config.schema import Config
from amberpicd.output.writer import is_temp_name
from amberpicd.pipeline import FileJob, FileResult, collect, run
from amberpicd.workers import ENGINE, WorkerPool


def walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and files below folders named (recursively); hidden names and
    symlinks that lead outside the folder being walked are skipped."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        root = path.resolve()
        for folder, dirs, files in os.walk(path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or is_temp_name(name):
                    continue
                candidate = Path(folder, name)
                if candidate.is_symlink() and not candidate.resolve().is_relative_to(root):
                    continue
                yield candidate


def plan(config: Config, path: Path, *, rule: str | None = None, dry_run: bool = False):
    """The job for one file and what to do with its original: the watch entry whose
    inbox contains it decides; outside every inbox, every rule and ``keep``."""
    absolute = Path(os.path.abspath(path))
    watch = config.watch_for(absolute)
    rules = config.rules_for(watch)
    if rule is not None:
        rules = tuple(r for r in rules if r.name == rule)
    relpath = ""
    originals = OriginalsPolicy()
    if watch is not None:
        rel = absolute.parent.relative_to(watch.inbox)
        relpath = "" if rel == Path(".") else rel.as_posix()
        originals = OriginalsPolicy(watch.originals, watch.archive)
    job = FileJob(
        path=absolute,
        rules=rules,
        limits=config.limits_for(watch),
        relpath=relpath,
        tag=uuid.uuid4().hex[:12],
        dry_run=dry_run,
    )
    return job, originals


def worker_setup() -> None:
    from amberpicd.imaging.decode import configure_pillow

    configure_pillow()


def process(
    config: Config,
    paths: Iterable[Path],
    *,
    jobs: int | None = None,
    rule: str | None = None,
    dry_run: bool = False,
    on_report: Callable[[Report], None] = lambda r: None,
) -> list[Report]:
    """Process every file under ``paths``; reports come back in completion order."""
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    reports: list[Report] = []
    pending: dict[Future[FileResult], tuple[FileJob, OriginalsPolicy]] = {}
    limit = max(1, workers) * 2  # bounded in-flight work: flat memory on huge folders
    with WorkerPool(
        workers,
        memory_limit=int(config.limits.worker_memory),
        initializer=worker_setup,
        preload=ENGINE,
    ) as pool:

        def drain(block: bool) -> None:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED, timeout=None if block else 0)
            for future in done:
                job, originals = pending.pop(future)
                report = _finish(future, job, originals)
                reports.append(report)
                on_report(report)

        for path in walk(paths):
            job, originals = plan(config, path, rule=rule, dry_run=dry_run)
            future = pool.submit(run, job, timeout=job.limits.job_timeout)
            pending[future] = (job, originals)
            while len(pending) >= limit:
                drain(block=True)
        while pending:
            drain(block=True)
    return reports


def _finish(future: Future[FileResult], job: FileJob, originals: OriginalsPolicy) -> Report:
    result = collect(future, job)
    return commit(result, originals, relpath=job.relpath, dry_run=job.dry_run)
