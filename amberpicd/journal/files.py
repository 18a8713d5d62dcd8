"""The journal's memory of files: which (path, content, rules) were decided, and the stat cache.

A file is its path and its content: the daemon asks :meth:`FileQueries.decided` whether this
path with this content and these rules was decided before (done with the original kept,
failed, unmatched), never whether the content was seen under another name. The content hash
comes from the stat cache when the file's identity (dev, ino, size, mtime_ns, ctime_ns) is the
one a worker hashed, so a scan over files already processed reads none of them; otherwise a
worker reads and hashes the file as it processes it, and :meth:`FileQueries.identify` records
what it found.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from amberpicd.errors import FileBusy, JournalError, printable
from amberpicd.fs.identity import FileIdentity
from amberpicd.journal.rows import _IN_UNFINISHED
from amberpicd.journal.store import Store, _db, _path

#: The originals "policy" of a done job whose original stayed because an output was skipped.
KEPT = "kept"


def _still_there(decisions: tuple[str, ...]) -> str:
    """SQL for "a decision that holds for a file still at its path": any of ``decisions``
    (jobs.DECISIONS: states after which a file is not taken again unless retried), except a
    done job whose original was moved, trashed or deleted. That left nothing at its path:
    a file found there later is a new drop, not that one. A done job that kept its
    original (``keep``, or ``kept``: an output skipped) left it there: it holds."""
    states = ", ".join(f"'{s}'" for s in decisions)
    return f"state IN ({states}) AND NOT (state = 'done' AND originals NOT IN ('keep', '{KEPT}'))"


# A decision holds under these rules (their fingerprint); an undo's under any: the user took
# the file back, and a change of rules is neither a change of the file nor a retry.
_UNDER_RULES = "(fingerprint = ? OR state IN ('undoing', 'undone'))"


class Decided(tuple):
    """(job id, state, error) of the decision that holds for a file."""

    @property
    def id(self) -> int:
        return self[0]

    @property
    def state(self) -> str:
        return self[1]

    @property
    def error(self) -> str | None:
        return self[2]


class FileQueries(Store):
    """File identity queries on the journal; the job lifecycle lives in ``jobs.Journal``."""

    _clock: Callable[[], float]  # set by Journal
    _decisions: tuple[str, ...] = ("done", "failed", "unmatched")  # Journal: jobs.DECISIONS

    @property
    def _still(self) -> str:  # the SQL fragment for the current decision states
        return _still_there(self._decisions)

    def _still_for(self, states: Sequence[str] | None) -> str:
        if states is None:
            return self._still
        unknown = set(states) - set(self._decisions)
        if unknown:  # the SQL is built from these names: only known states
            raise JournalError(f"{self.path.name}: not decision states: {sorted(unknown)}")
        return _still_there(tuple(states))

    def begin_file(
        self,
        source: Path,
        fingerprint: str,
        *,
        inbox: Path | None,
        identity: FileIdentity,
        originals: str = "keep",
        rules: Sequence[str] = (),
        take_over: Callable[[int], None] = lambda job_id: None,
    ) -> int:
        """Record a new job (state running) for the file at ``source``, as stat saw it when it
        was taken; its content hash is not known until a worker has read it (identify).

        The claim on the file: FileBusy when another live writer (the daemon beside an
        ``amberpicd process`` run, or the other way round) has a job of ``source`` in flight.
        Looked up and inserted in one IMMEDIATE transaction, so of two writers racing for
        one file exactly one gets it.

        The unfinished jobs of ``source`` whose owner is gone (a killed run's) are taken over
        in that same transaction: ``take_over(job_id)`` removes each one's temps, then it is
        superseded (state retry: the new job does its work), so no recovery later publishes
        its temps beside the new job's outputs (a ``-1`` copy) or handles the original again.
        The write lock is held meanwhile, so no recovery takes the job in between; a crash
        after the temps went and before the commit leaves a staged job whose temps are gone,
        which recovery runs again (found by its bytes), as after any lost temp."""
        t = self._clock()
        with self._write() as conn:
            for old in self._claim(conn, source):
                take_over(old)
                reason = f"{printable(source.name)}: taken over by a later run (its owner was gone)"
                conn.execute(
                    "UPDATE jobs SET state = 'retry', error = ?, finished = ? WHERE id = ?",
                    (reason, t, old),
                )
                conn.execute("DELETE FROM staged WHERE job_id = ?", (old,))
            cur = conn.execute(
                "INSERT INTO jobs (source, inbox, rules, content_hash, fingerprint, state, size,"
                " mtime_ns, dev, ino, ctime_ns, originals, created, started, owner)"
                " VALUES (?,?,?,'',?,'running',?,?,?,?,?,?,?,?,?)",
                (
                    _db(source),
                    _db(inbox) if inbox else None,
                    json.dumps(list(rules)),
                    fingerprint,
                    *_identity_row(identity),
                    originals,
                    t,
                    t,
                    self.owner_id,
                ),
            )
            return int(cur.lastrowid or 0)

    def _claim(self, conn: sqlite3.Connection, source: Path) -> list[int]:
        """FileBusy if another live writer has ``source`` in flight, else the ids of its
        unfinished jobs whose owner is gone. Our own are left as they are (one may be in
        flight here: the dispatcher's, or a path named twice)."""
        owner = self.owner
        if owner is None or owner.id is None:
            return []  # no claim of our own to stamp: nothing to compare with (read-only state)
        rows = conn.execute(
            f"SELECT id, owner FROM jobs WHERE source = ? AND {_IN_UNFINISHED} ORDER BY id",
            (_db(source),),
        ).fetchall()
        rows = [(job_id, other) for job_id, other in rows if other != owner.id]
        for other in {o for _, o in rows}:
            if not owner.gone(other):
                raise FileBusy(source, str(other).split("x", 1)[0])
        return [job_id for job_id, _ in rows]

    def identify(
        self,
        job_id: int,
        content_hash: str,
        identity: FileIdentity,
        *,
        fingerprint: str | None = None,
        cache: bool = False,
    ) -> None:
        """A running job's file was read: record the hash and identity of what was read (the
        original is handled only while it still has that identity); ``cache`` also remembers
        identity → hash for later scans (only for identities that are ``settled``)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET content_hash = ?, size = ?, mtime_ns = ?, dev = ?, ino = ?,"
                " ctime_ns = ?, fingerprint = COALESCE(?, fingerprint)"
                " WHERE id = ? AND state = 'running'",
                (content_hash, *_identity_row(identity), fingerprint, job_id),
            )
            if cur.rowcount != 1:
                raise JournalError(f"{self.path.name}: job {job_id} is not running")
            if cache:
                self._cache(conn, identity, content_hash)

    def remember(self, identity: FileIdentity, content_hash: str) -> None:
        """Remember that the file with this (settled) identity hashes to ``content_hash``."""
        with self._write() as conn:
            self._cache(conn, identity, content_hash)

    def cached_hash(self, identity: FileIdentity) -> str | None:
        """The content hash of the file with exactly this identity, if a worker hashed it.
        The whole identity must match: inode numbers are reused after a delete."""
        rows = self._read(
            "SELECT content_hash FROM stat_cache WHERE dev = ? AND ino = ? AND size = ?"
            " AND mtime_ns = ? AND ctime_ns = ?",
            (identity.dev, identity.ino, identity.size, identity.mtime_ns, identity.ctime_ns),
        )
        return rows[0][0] if rows else None

    def cached_hashes(self, identities: Sequence[FileIdentity]) -> dict[FileIdentity, str]:
        """:meth:`cached_hash` for many identities at once (a rescan), in a few queries."""
        found: dict[FileIdentity, str] = {}
        by_dev: dict[int, dict[int, FileIdentity]] = {}
        for i in identities:
            by_dev.setdefault(i.dev, {})[i.ino] = i
        for dev, wanted in by_dev.items():
            inodes = list(wanted)
            for start in range(0, len(inodes), 500):  # the primary key answers dev + ino IN
                chunk = inodes[start : start + 500]
                rows = self._read(
                    "SELECT ino, size, mtime_ns, ctime_ns, content_hash FROM stat_cache"
                    " WHERE dev = ? AND ino IN ({})".format(", ".join("?" * len(chunk))),
                    [dev, *chunk],
                )
                for ino, size, mtime_ns, ctime_ns, content_hash in rows:
                    identity = wanted[ino]
                    if (identity.size, identity.mtime_ns, identity.ctime_ns) == (
                        size,
                        mtime_ns,
                        ctime_ns,
                    ):
                        found[identity] = content_hash
        return found

    def decided_among(
        self, inbox: Path, fingerprint: str, candidates: Sequence[tuple[Path, str]]
    ) -> set[Path]:
        """Of the (path, content hash) ``candidates`` in ``inbox``, the paths :meth:`decided`
        holds a decision for under these rules: a rescan's decisions in one query."""
        rows = self._read(
            f"SELECT source, content_hash FROM jobs WHERE inbox = ? AND {_UNDER_RULES}"
            f" AND content_hash != '' AND {self._still}",
            (_db(inbox), fingerprint),
        )
        decided = set(rows)
        return {path for path, h in candidates if (_db(path), h) in decided}

    def decided(
        self,
        source: Path,
        fingerprint: str,
        content_hash: str,
        *,
        states: Sequence[str] | None = None,
    ) -> Decided | None:
        """The latest decision that holds for this path with this content and rules: done (with
        the original kept), failed or unmatched. None: the file is due. ``states`` narrows
        which decisions count (``process`` skips only ``("done",)``)."""
        rows = self._read(
            f"SELECT id, state, error FROM jobs WHERE source = ? AND {_UNDER_RULES}"
            f" AND content_hash = ? AND {self._still_for(states)} ORDER BY id DESC LIMIT 1",
            (_db(source), fingerprint, content_hash),
        )
        return Decided(rows[0]) if rows else None

    def decided_hashes(
        self,
        source: Path,
        fingerprint: str,
        limit: int = 16,
        *,
        states: Sequence[str] | None = None,
    ) -> tuple[str, ...]:
        """The content hashes :meth:`decided` knows for this path and rules, newest first."""
        rows = self._read(
            f"SELECT content_hash FROM jobs WHERE source = ? AND {_UNDER_RULES}"
            f" AND content_hash != '' AND {self._still_for(states)}"
            " GROUP BY content_hash ORDER BY MAX(id) DESC LIMIT ?",
            (_db(source), fingerprint, limit),
        )
        return tuple(r[0] for r in rows)

    def failed_unread(
        self, source: Path, fingerprint: str, identity: FileIdentity
    ) -> Decided | None:
        """A failure of this very file (same identity) before its content could be read
        (too large, unreadable): it is not tried again until it changes or is retried."""
        rows = self._read(
            "SELECT id, state, error FROM jobs WHERE source = ? AND fingerprint = ?"
            " AND content_hash = '' AND state = 'failed' AND size = ? AND mtime_ns = ?"
            " AND dev = ? AND ino = ? AND ctime_ns = ? ORDER BY id DESC LIMIT 1",
            (_db(source), fingerprint, *_identity_row(identity)),
        )
        return Decided(rows[0]) if rows else None

    def duplicate_of(
        self, content_hash: str, fingerprint: str, source: Path
    ) -> tuple[int, Path] | None:
        """(id, source) of a done job that made outputs of this content under these rules
        from another path (``duplicates: skip``), or None. A job that skipped an output
        (``kept``) made not all of them: a copy of its content is processed, never handled
        as if its outputs existed."""
        rows = self._read(
            "SELECT id, source FROM jobs WHERE content_hash = ? AND fingerprint = ?"
            " AND state = 'done' AND duplicate_of IS NULL AND outputs != '[]' AND source != ?"
            f" AND originals != '{KEPT}' ORDER BY id LIMIT 1",
            (content_hash, fingerprint, _db(source)),
        )
        return (rows[0][0], _path(rows[0][1])) if rows else None

    def mark_duplicate(self, job_id: int, of: int) -> None:
        """Note that running job ``job_id`` is a duplicate of job ``of`` (no outputs of its own)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET duplicate_of = ? WHERE id = ? AND state = 'running'", (of, job_id)
            )

    def discard(self, job_id: int) -> None:
        """Forget a running job that staged nothing: its file turned out already decided, or
        changed while being read (it is taken again)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM jobs WHERE id = ? AND state = 'running'"
                " AND NOT EXISTS (SELECT 1 FROM staged WHERE job_id = ?)",
                (job_id, job_id),
            )

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    def _cache(conn: sqlite3.Connection, identity: FileIdentity, content_hash: str) -> None:
        # One row per inode: a new file on a reused inode number replaces the old row.
        conn.execute(
            "INSERT OR REPLACE INTO stat_cache (dev, ino, size, mtime_ns, ctime_ns, content_hash)"
            " VALUES (?,?,?,?,?,?)",
            (
                identity.dev,
                identity.ino,
                identity.size,
                identity.mtime_ns,
                identity.ctime_ns,
                content_hash,
            ),
        )

    @staticmethod
    def _prune_stat_cache(conn: sqlite3.Connection) -> None:
        """Drop cached hashes no job refers to any more (called by prune)."""
        conn.execute(
            "DELETE FROM stat_cache WHERE NOT EXISTS"
            " (SELECT 1 FROM jobs WHERE jobs.content_hash = stat_cache.content_hash)"
        )


def _identity_row(identity: FileIdentity) -> tuple[int, int, int, int, int]:
    """The identity in the column order size, mtime_ns, dev, ino, ctime_ns."""
    return (identity.size, identity.mtime_ns, identity.dev, identity.ino, identity.ctime_ns)
