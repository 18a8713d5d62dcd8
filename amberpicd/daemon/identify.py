"""The identify stage: is a settled path a file to process, and under which job?

A file is its path and its content. Taking a path costs one lstat and two indexed journal
queries: the stat cache gives the content hash of a file whose identity a worker already
hashed, and a decision for (path, hash, rules) means nothing is to be done. Files are never
read here: a worker reads each file once, hashes the bytes it decodes, and the hash and
identity it reports are what the commit stage records. ``take`` begins the journal's job for
a file to process; ``known`` lets a rescan pass over files unchanged since processed. Reads
the journal, writes only ``begin_file`` (removing the temps of a dead owner's job it takes
over); runs on the dispatch thread (``known`` on the watcher's).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from amberpicd.config.schema import Config, Watch
from amberpicd.daemon.inflight import Running
from amberpicd.engine.commit import OriginalsPolicy
from amberpicd.engine.job import FileJob
from amberpicd.engine.recording import known_decision
from amberpicd.errors import printable
from amberpicd.fs.identity import FileIdentity
from amberpicd.journal import Journal
from amberpicd.output.writer import sweep_temps
from amberpicd.rules.fingerprint import fingerprint

log = logging.getLogger("amberpicd")


def job_for(config: Config, watch: Watch, path: Path, tag: str) -> tuple[FileJob, OriginalsPolicy]:
    rel = path.parent.relative_to(watch.inbox)
    job = FileJob(
        path=path,
        rules=config.rules_for(watch),
        limits=config.limits_for(watch),
        relpath="" if rel == Path(".") else rel.as_posix(),
        tag=tag,
        roots=config.folders(),
    )
    return job, OriginalsPolicy(watch.originals, watch.archive, config.folders())


def sweep(job: FileJob) -> None:
    """Remove the temps ``job``'s worker staged (it is gone: a dead owner's job taken over,
    or one the committer dropped), so nobody else will."""
    try:
        sweep_temps(job.output_roots(), job.tag)
    except OSError as exc:  # e.g. an output root swapped for a link: said, and left alone
        log.error("%s: temp files not removed: %s", printable(job.path.name), exc)


def say_decided(path: Path, earlier, level: int = logging.INFO) -> None:
    name = printable(path.name)
    if earlier.state == "failed":
        log.debug("%s: failed before (%s); `amberpicd retry` tries again", name, earlier.error)
    else:
        log.log(level, "%s: already processed (same name, content and rules)", name)


class Identify:
    def __init__(self, journal: Journal, config: Callable[[], Config]):
        self.journal, self.config = journal, config
        self._fps: dict[Path, str] = {}  # fingerprints of the current config's inboxes
        self._fps_of: Config | None = None

    def take(self, path: Path) -> Running | None:
        """The job to run for ``path``, begun in the journal; None when there is none (not
        an inbox's file, one of our outputs, gone, empty, or decided before)."""
        config = self.config()
        watch = config.watch_for(path)
        if watch is None or not watch.enabled:
            return None
        if self.journal.is_output(path):
            log.debug("%s: one of our outputs; not taken", printable(path.name))
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("%s: cannot read: %s", printable(path.name), exc.strerror or exc)
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return None
        rules = config.rules_for(watch)
        fp, identity = self.fingerprint(config, watch), FileIdentity.of(st)
        earlier = known_decision(self.journal, path, fp, identity)  # no read: the stat cache
        earlier = earlier or self.journal.failed_unread(path, fp, identity)
        if earlier is not None:
            say_decided(path, earlier, logging.DEBUG)
            return None
        job_id = self.journal.begin_file(
            path,
            fp,
            inbox=watch.inbox,
            identity=identity,
            originals=watch.originals,
            rules=[r.name for r in rules],
            # A killed run's job of this file (e.g. a ``process`` run's, its owner proved
            # gone): its temps go and it is superseded, or our next start would redo it.
            take_over=lambda old: sweep(job_for(config, watch, path, str(old))[0]),
        )
        job, originals = job_for(config, watch, path, str(job_id))
        job = replace(job, done_hashes=self.journal.decided_hashes(path, fp))
        return Running(job_id, job, originals, watch)

    def known(self, paths: Sequence[Path], busy: Callable[[Path], bool]) -> set[Path]:
        """Of the files a rescan found, those it may pass over: each one's identity is one a
        worker hashed, and that content was decided for its path and these rules (``busy``
        paths, with a job in flight, are not). One lstat per file and a few queries in all;
        no file is opened. Thread-safe (the watcher's rescans call it)."""
        config, passed = self.config(), set()
        by_watch: dict[str, list[tuple[Path, FileIdentity]]] = {}
        watches: dict[str, Watch] = {}
        for path in paths:
            watch = _deepest(watches, path, config)
            if watch is None or busy(path):
                continue
            watches.setdefault(str(watch.inbox), watch)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                by_watch.setdefault(str(watch.inbox), []).append((path, FileIdentity.of(st)))
        for inbox, found in by_watch.items():
            hashes = self.journal.cached_hashes([identity for _, identity in found])
            if not hashes:
                continue
            fp = self.fingerprint(config, watches[inbox])
            candidates = [(p, hashes[i]) for p, i in found if i in hashes]
            passed |= self.journal.decided_among(watches[inbox].inbox, fp, candidates)
        return passed

    def fingerprint(self, config: Config, watch: Watch) -> str:
        # Dumping the rules costs more than the rest of a take: once per config and inbox.
        # A new dict per config, never cleared: the watcher's rescans read it too.
        if self._fps_of is not config:
            self._fps, self._fps_of = {}, config
        memo = self._fps
        fp = memo.get(watch.inbox)
        if fp is None:
            fp = memo[watch.inbox] = fingerprint(config.rules_for(watch))
        return fp


def _deepest(watches: dict[str, Watch], path: Path, config: Config) -> Watch | None:
    """The watch of ``path``: the parent's inbox when it is one already seen (a rescan's
    files mostly share one), else ``config.watch_for`` (deepest inbox wins)."""
    watch = watches.get(os.path.dirname(path))
    return watch if watch is not None else config.watch_for(path)
