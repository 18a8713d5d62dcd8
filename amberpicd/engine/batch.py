"""``amberpicd process``: run the configured rules on given files and folders, in parallel.

Uses exactly the daemon's engine: ``pipeline.run`` in worker processes (through
``workers.child.run_in_pool``, as the daemon submits it: so this process never loads the
pixel side, which the fork server has preloaded), ``commit`` here.
A dry run names the files the real run would write: ``free_name`` resolves name conflicts
as publishing does, without writing.

The daemon's journal is used as the daemon uses it (``recording``): a file whose path,
content and rules are recorded as done is not processed again (status ``already``; cheaply
by the stat cache when its identity is known, else its worker stops right after hashing it),
and every job is recorded, so the daemon knows what ``process`` did and the other way round.
Files outside every inbox are journaled the same way, with no inbox. ``force`` redoes done
files (and records them again). A file the daemon (or another run) has in flight is left to
it, status ``skipped`` with a note: the journal gives each file to one run (``begin_file``).
A dry run only reads the journal, and only if it exists.
A journal that cannot be opened or written is said in one line (``warn``); the run goes on
without it, skipping nothing.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

from amberpicd.config.schema import Config
from amberpicd.engine.commit import OriginalsPolicy, Report, commit
from amberpicd.engine.job import FileJob, FileResult, PlannedOutput, collect
from amberpicd.engine.recording import forget, identify, known_decision, record
from amberpicd.errors import FileBusy, JournalError, printable
from amberpicd.fs.identity import FileIdentity
from amberpicd.fs.names import name_choices
from amberpicd.journal import Journal
from amberpicd.output.writer import is_temp_name, sweep_temps
from amberpicd.paths import state_dir
from amberpicd.rules.fingerprint import fingerprint
from amberpicd.workers.child import engine_setup, run_in_pool
from amberpicd.workers.pool import ENGINE, WorkerPool

DONE = ("done",)  # what process skips: failed and unmatched files are tried again
LEFT_TO_DAEMON = "in an inbox of the running daemon, and no journal to share it: left to it"


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
    for name in name_choices(final.name):
        if not exists(final.with_name(name)):
            return final.with_name(name)
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


def process(
    config: Config,
    paths: Iterable[Path],
    *,
    jobs: int | None = None,
    rule: str | None = None,
    dry_run: bool = False,
    on_report: Callable[[Report], None] = lambda r: None,
    tally: Tally | None = None,
    journal: Journal | None = None,
    force: bool = False,
    warn: Callable[[str], None] = lambda line: None,
    beside_daemon: bool = False,
) -> list[Report]:
    """Process every file in ``paths`` (as ``walk`` yields them); reports come back in
    completion order. ``tally`` also learns each file's name as ``walk_shown`` shows it.
    With a ``journal`` (``open_journal``), done files are skipped and every job recorded.
    ``beside_daemon`` (a daemon runs): while there is no journal to claim files through,
    files of its inboxes are left to it (``LEFT_TO_DAEMON``), not done twice."""
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    reports: list[Report] = []
    pending: dict[Future[FileResult], tuple[FileJob, OriginalsPolicy, str, Journaled | None]] = {}
    names = DryNames(config)
    book = Book(journal, force=force, dry_run=dry_run, warn=warn)
    limit = max(1, workers) * 2  # bounded in-flight work: flat memory on huge folders
    # Walked before anything is written: outputs or moved originals that land inside a
    # folder being walked must not become inputs of the same run.
    files = list(walk_shown(paths))
    try:
        with WorkerPool(
            workers,
            memory_limit=int(config.limits.worker_memory),
            initializer=engine_setup,
            preload=ENGINE,
        ) as pool:
            pool.warm(len(files))  # they start while the first files are journaled: no more
            # workers than files, so one file on a many-core machine forks one worker

            def done(report: Report, size_in: int, size_out: int, shown: str) -> None:
                if tally is not None:
                    tally.add(report, size_in, size_out, shown)
                reports.append(report)
                on_report(report)

            def drain(block: bool) -> None:
                finished, _ = wait(
                    list(pending), return_when=FIRST_COMPLETED, timeout=None if block else 0
                )
                for future in finished:
                    job, originals, shown, entry = pending.pop(future)
                    result = collect(future, job)
                    report = book.commit(entry, job, originals, result)
                    if dry_run and report.status == "done":
                        names.resolve(result, report)
                    size_in = result.identity.size if result.identity else 0
                    done(report, size_in, sum(o.bytes for o in result.outputs), shown)

            for path, shown in files:
                job, originals = plan(config, path, rule=rule, dry_run=dry_run)
                alone = book.journal is None and not dry_run  # no claim through the journal
                if alone and beside_daemon and config.watch_for(job.path) is not None:
                    done(Report(job.path, "skipped", note=LEFT_TO_DAEMON), 0, 0, shown)
                    continue
                try:
                    job, entry = book.take(config, job, originals)
                except FileBusy as exc:  # the daemon has it in flight: it finishes it, not us
                    note = f"being processed by another amberpicd (pid {exc.pid}); left to it"
                    done(Report(job.path, "skipped", note=note), 0, 0, shown)
                    continue
                if job is None:
                    done(Report(Path(os.path.abspath(path)), "already"), 0, 0, shown)
                    continue
                future = pool.submit(run_in_pool, job, timeout=job.limits.job_timeout)
                pending[future] = (job, originals, shown, entry)
                while len(pending) >= limit:
                    drain(block=True)
            while pending:
                drain(block=True)
    except BaseException:  # Ctrl-C, SIGTERM, an error: the pool is closed, its workers gone
        for job, *_ in pending.values():  # so the temps of the jobs cut short are nobody's
            _sweep(job)
        raise
    return reports


def _sweep(job: FileJob) -> None:
    with suppress(OSError):  # a root swapped for a link: left alone, as the daemon does
        sweep_temps(job.output_roots(), job.tag)


def open_journal(dry_run: bool, warn: Callable[[str], None]) -> Journal | None:
    """The daemon's journal (``$XDG_STATE_HOME/amberpic/journal.db``): read-only for a dry
    run, which never creates it; never repaired here (the daemon does that). None, said
    in one line through ``warn``, when it cannot be opened."""
    path = state_dir() / "journal.db"
    try:
        if dry_run:
            return Journal(path, read_only=True) if path.is_file() else None
        return Journal(path, repair=False)
    except JournalError as exc:
        warn(f"journal: {exc}; processing every file, none skipped as done")
        return None


class Journaled(tuple):
    """(job id, fingerprint) of a job recorded in the journal."""

    @property
    def job_id(self) -> int:
        return self[0]

    @property
    def fp(self) -> str:
        return self[1]


class Book:
    """``process``'s use of the journal: what to skip when taking a file, and the
    recording of each job through ``recording`` (as the daemon's dispatcher records it).
    A journal error drops the journal for the rest of the run, said once."""

    def __init__(
        self, journal: Journal | None, *, force: bool, dry_run: bool, warn: Callable[[str], None]
    ):
        self.journal, self.force, self.dry_run, self.warn = journal, force, dry_run, warn

    def _lost(self, exc: JournalError) -> None:
        self.warn(f"journal: {exc}; going on without it, none skipped as done")
        if self.journal is not None:
            self.journal.close()
        self.journal = None

    def take(
        self, config: Config, job: FileJob, originals: OriginalsPolicy
    ) -> tuple[FileJob | None, Journaled | None]:
        """The job to run (None: done already) and its journal entry (None: not recorded)."""
        journal = self.journal
        if journal is None:
            return job, None
        try:
            st = os.lstat(job.path)
        except OSError:
            return job, None  # the worker says what is wrong with it
        if not stat.S_ISREG(st.st_mode):
            return job, None  # a link the walk allowed: processed, not recorded
        identity, fp = FileIdentity.of(st), fingerprint(job.rules)
        try:
            if not self.force:
                if known_decision(journal, job.path, fp, identity, DONE) is not None:
                    return None, None
                done = journal.decided_hashes(job.path, fp, states=DONE)
                job = replace(job, done_hashes=done)
            if self.dry_run:
                return job, None
            watch = config.watch_for(job.path)
            job_id = journal.begin_file(
                job.path,
                fp,
                inbox=watch.inbox if watch is not None else None,
                identity=identity,
                originals=originals.policy,
                rules=[r.name for r in job.rules],
                # A killed run's job of this file (begin_file proved its owner gone, so
                # are its temps' writers): its temps go, it is superseded by this one.
                take_over=lambda old: _sweep(replace(job, tag=str(old))),
            )
        except JournalError as exc:
            self._lost(exc)
            return replace(job, done_hashes=()), None
        return replace(job, tag=str(job_id)), Journaled((job_id, fp))

    def commit(
        self,
        entry: Journaled | None,
        job: FileJob,
        originals: OriginalsPolicy,
        result: FileResult,
    ) -> Report:
        """Commit ``result``, recorded in the journal when its job is."""
        journal = self.journal
        if result.status == "already":  # the worker hashed it: a content done before
            if entry is not None and journal is not None:
                try:
                    forget(journal, entry.job_id, result)
                except JournalError as exc:
                    self._lost(exc)
            return Report(result.path, "already", seconds=result.seconds)
        if entry is None or journal is None:
            return commit(result, originals, relpath=job.relpath, dry_run=job.dry_run)
        try:
            if result.status == "changed":
                journal.discard(entry.job_id)
            elif result.content_hash and result.identity is not None:
                earlier = None
                if not self.force:
                    earlier = journal.decided(job.path, entry.fp, result.content_hash, states=DONE)
                if earlier is not None:  # done meanwhile (the daemon, or a link to it)
                    forget(journal, entry.job_id, result)
                    return Report(result.path, "already", seconds=result.seconds)
                identify(journal, entry.job_id, result, entry.fp)
        except JournalError as exc:  # nothing committed yet: do it without the journal
            self._lost(exc)
            return commit(result, originals, relpath=job.relpath)
        if result.status == "changed":
            return commit(result, originals, relpath=job.relpath)
        try:
            return record(journal, entry.job_id, job, originals, result)
        except JournalError as exc:
            self._lost(exc)
            name = printable(job.path.name)
            return Report(job.path, "failed", error=f"{name}: journal: {exc}")


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
        placed = self.placed(result)
        report.outputs = [name for _, name in placed]
        report.encodes = [{"output": str(name), **out.chosen()} for out, name in placed]
        if not report.outputs:
            report.status = "skipped"  # every output's name is taken, and on_conflict: skip
