"""``amberpicd process``: run the configured rules on given files and folders, in parallel.

Uses exactly the daemon's engine: ``pipeline.run`` in worker processes, ``commit`` here.
A dry run names the files the real run would write: ``free_name`` resolves name conflicts
as publishing does, without writing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

from amberpicd.commit import OriginalsPolicy, Report, commit
from amberpicd.config.schema import Config
from amberpicd.errors import printable
from amberpicd.output.writer import is_temp_name
from amberpicd.pipeline import FileJob, FileResult, PlannedOutput, collect, run
from amberpicd.workers import ENGINE, WorkerPool


def walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and files below folders named (recursively); hidden names and
    symlinks that lead outside the folder being walked are skipped."""
    for path, _shown in walk_shown(paths):
        yield path


def walk_shown(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """``walk``, with each file as the run shows it: relative to the folder given
    (``generator/Gemfile``, not just ``Gemfile``); a file given by itself by its name."""
    for path in paths:
        if not path.is_dir():
            yield path, printable(path.name)
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
                yield candidate, printable(os.path.relpath(candidate, path))


def free_name(final: Path, on_conflict: str, exists: Callable[[Path], bool]) -> Path | None:
    """The name publishing gives an output meant for ``final``: with ``rename`` the first of
    ``name.ext``, ``name-1.ext``, ``name-2.ext``... that ``exists`` says is free; ``overwrite``
    ``final`` itself; ``skip`` ``final`` if free, else None (the output is not written)."""
    if on_conflict == "overwrite" or not exists(final):
        return final
    if on_conflict == "skip":
        return None
    for n in range(1, 10_000):
        candidate = final.with_name(f"{final.stem}-{n}{final.suffix}")
        if not exists(candidate):
            return candidate
    return None


class Tally:
    """What a run did, for its last line: counts, bytes in and out, time."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.bytes_in = self.bytes_out = 0
        self.shown: dict[Path, str] = {}  # source → its name as the run shows it

    def add(self, report: Report, bytes_in: int, bytes_out: int, shown: str) -> None:
        self.shown[report.source] = shown
        self.counts[report.status] = self.counts.get(report.status, 0) + 1
        if report.status == "done":
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out


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
        originals = OriginalsPolicy(watch.originals, watch.archive, config.folders())
    job = FileJob(
        path=absolute,
        rules=rules,
        limits=config.limits_for(watch),
        relpath=relpath,
        tag=uuid.uuid4().hex[:12],
        dry_run=dry_run,
        roots=config.folders(),
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
    tally: Tally | None = None,
) -> list[Report]:
    """Process every file in ``paths`` (as ``walk`` yields them); reports come back in
    completion order. ``tally`` also learns each file's name as ``walk_shown`` shows it."""
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    reports: list[Report] = []
    pending: dict[Future[FileResult], tuple[FileJob, OriginalsPolicy, str]] = {}
    names = DryNames(config)
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
                job, originals, shown = pending.pop(future)
                result = collect(future, job)
                report = commit(result, originals, relpath=job.relpath, dry_run=job.dry_run)
                if dry_run and report.status == "done":
                    names.resolve(result, report)
                if tally is not None:
                    size_in = result.identity.size if result.identity else 0
                    tally.add(report, size_in, sum(o.bytes for o in result.outputs), shown)
                reports.append(report)
                on_report(report)

        # Walked before anything is written: outputs or moved originals that land inside a
        # folder being walked must not become inputs of the same run.
        for path, shown in list(walk_shown(paths)):
            job, originals = plan(config, path, rule=rule, dry_run=dry_run)
            future = pool.submit(run, job, timeout=job.limits.job_timeout)
            pending[future] = (job, originals, shown)
            while len(pending) >= limit:
                drain(block=True)
        while pending:
            drain(block=True)
    return reports


class DryNames:
    """The names a real run would publish, for a dry run: conflicts resolved as ``publish``
    does, counting the names earlier files of the same run would take."""

    def __init__(self, config: Config):
        self.config = config
        self.claimed: set[Path] = set()

    def taken(self, path: Path) -> bool:
        return path in self.claimed or os.path.lexists(path)

    def placed(self, result: FileResult) -> list[tuple[PlannedOutput, Path]]:
        """Each output that would be written, with its name; ``skip`` drops a taken one."""
        placed = []
        for out in result.outputs:
            name = free_name(out.final, self.config.rule(out.rule).on_conflict, self.taken)
            if name is not None:
                self.claimed.add(name)
                placed.append((out, name))
        return placed

    def resolve(self, result: FileResult, report: Report) -> None:
        """Set ``report.outputs`` to the names the real run would use."""
        report.outputs = [name for _, name in self.placed(result)]
        if not report.outputs:
            report.status = "skipped"  # every output's name is taken, and on_conflict: skip
