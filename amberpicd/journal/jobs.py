"""The Journal's job API: each lifecycle state change as one committed transaction, and queries.

A job moves running → staged → published → done, or ends failed (later retry) or unmatched.
A job whose outputs are all published but whose original could not be moved, trashed or deleted
goes published → original_failed; ``retry_originals`` brings it back to published, so only the
original step runs again (never the pipeline: its outputs exist).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from amberpicd.errors import JournalError
from amberpicd.journal.files import KEPT
from amberpicd.journal.outputs import OutputQueries
from amberpicd.journal.rows import (
    _COLS,
    _IN_DECISIONS,
    _IN_UNFINISHED,
    _MAX_LIMIT,
    DECISIONS,
    UNFINISHED,
    Job,
    StagedOutput,
    _job,
)
from amberpicd.journal.store import _db, _path


class Journal(OutputQueries):
    """The job journal in one SQLite file; thread-safe (one connection behind a lock).

    Every method raises JournalError when the database cannot be used, including a job id that
    does not exist or a state change the lifecycle does not allow (a daemon bug, said loudly).
    """

    _decisions = DECISIONS  # what decided() and the rescan pass-over count as decided

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        repair: bool = True,
    ):
        self._clock = clock
        super().__init__(path, timeout=timeout, read_only=read_only, repair=repair)

    # --- state changes ---------------------------------------------------------------------

    def _insert(self, source: Path, inbox: Path | None, rules: Sequence[str], *rest: object) -> int:
        row = (_db(source), _db(inbox) if inbox else None, json.dumps(list(rules)))
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (source, inbox, rules, content_hash, fingerprint, state, size,"
                " mtime_ns, created, started, finished, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*row, *rest, self.owner_id),
            )
            return int(cur.lastrowid or 0)

    def begin(
        self,
        source: Path,
        content_hash: str,
        fingerprint: str,
        *,
        inbox: Path | None = None,
        size: int = 0,
        mtime_ns: int = 0,
        rules: Sequence[str] = (),
    ) -> int:
        """Record a new job in state running; returns its id."""
        t = self._clock()
        return self._insert(
            source, inbox, rules, content_hash, fingerprint, "running", size, mtime_ns, t, t, None
        )

    def _move(
        self,
        conn: sqlite3.Connection,
        job_id: int,
        allowed: tuple[str, ...],
        state: str,
        **cols: object,
    ) -> None:
        row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JournalError(f"{self.path.name}: no job {job_id}")
        if row[0] not in allowed:
            raise JournalError(
                f"{self.path.name}: job {job_id}: cannot go from {row[0]} to {state}"
            )
        sets = "".join(f", {name} = ?" for name in cols)
        conn.execute(
            f"UPDATE jobs SET state = ?{sets} WHERE id = ?", (state, *cols.values(), job_id)
        )

    def stage(self, job_id: int, outputs: Sequence[StagedOutput]) -> None:
        """running → staged: the temps are written and fsynced; n is the position in outputs."""
        with self._write() as conn:
            self._move(conn, job_id, ("running",), "staged")
            for n, out in enumerate(outputs):
                temp, final = _db(out.temp), _db(out.final)
                conn.execute(
                    "INSERT INTO staged (job_id, n, temp, final, on_conflict, sha256)"
                    " VALUES (?,?,?,?,?,?)",
                    (job_id, n, temp, final, out.on_conflict, out.sha256 or None),
                )
                # Index the intended name now: it appears on disk before published() is called.
                conn.executemany(
                    "INSERT OR IGNORE INTO output_paths (path, job_id) VALUES (?, ?)",
                    [(temp, job_id), (final, job_id)],
                )

    def mark_published(self, job_id: int, n: int, path: Path) -> None:
        """Note where staged output n is being published (call before linking, again after a
        name conflict), so is_output knows the name and recovery knows where it went."""
        with self._write() as conn:
            self._move(conn, job_id, ("staged",), "staged")
            cur = conn.execute(
                "UPDATE staged SET published_path = ? WHERE job_id = ? AND n = ?",
                (_db(path), job_id, n),
            )
            if cur.rowcount != 1:
                raise JournalError(f"{self.path.name}: job {job_id} has no staged output {n}")
            conn.execute(
                "INSERT OR IGNORE INTO output_paths (path, job_id) VALUES (?, ?)",
                (_db(path), job_id),
            )

    def published(
        self, job_id: int, outputs: Sequence[Path], chosen: Sequence[Mapping] = ()
    ) -> None:
        """staged → published, with the final paths actually written (skipped ones left out)
        and, per path, what its encoder chose (``chosen``, e.g. quality and score)."""
        paths = [os.fspath(p) for p in outputs]  # JSON text: escapes undecodable bytes
        extra = list(chosen) + [{}] * (len(paths) - len(chosen))
        with self._write() as conn:
            # Each output's hash is its staged row's: the row whose name was noted last.
            rows = conn.execute(
                "SELECT published_path, final, sha256 FROM staged WHERE job_id = ? ORDER BY n",
                (job_id,),
            ).fetchall()
            hashes = {os.fsdecode(p or f): h for p, f, h in rows if h}
            entries = [
                {"path": p, "sha256": hashes.get(p, ""), **c}
                for p, c in zip(paths, extra, strict=False)
            ]
            self._move(conn, job_id, ("staged",), "published", outputs=json.dumps(entries))
            # Forget intended names not used (skipped, renamed on conflict): someone else's file.
            conn.execute(
                "DELETE FROM output_paths WHERE job_id = ? AND path NOT IN"
                " (SELECT temp FROM staged WHERE job_id = ?)",
                (job_id, job_id),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO output_paths (path, job_id) VALUES (?, ?)",
                [(_db(p), job_id) for p in paths],
            )

    def unstage(self, job_id: int) -> None:
        """staged → running: a job whose temps are gone runs again (crash recovery); the
        names it noted stay known as its outputs until published() settles them."""
        with self._write() as conn:
            self._move(conn, job_id, ("staged",), "running")
            conn.execute("DELETE FROM staged WHERE job_id = ?", (job_id,))

    def finish(self, job_id: int, original: dict | None = None, *, kept: bool = False) -> None:
        """published → done: the original was handled too; ``original`` says where it went
        (``engine.originals.Fate``), what undo needs to put it back. ``kept``: it stayed
        where it was because an output was skipped (on_conflict: skip): the policy the job
        applied is then ``kept`` (files.KEPT), so the file is decided where it lies, and
        its content is no ``duplicates: skip`` target (not all of its outputs exist)."""
        cols: dict[str, object] = {"finished": self._clock()}
        if original is not None:
            cols["original"] = json.dumps(original)
        if kept:
            cols["originals"] = KEPT
        with self._write() as conn:
            self._move(conn, job_id, ("published",), "done", **cols)

    # --- undo (engine/undo.py) --------------------------------------------------------------

    def begin_undo(self, job_id: int, record: dict) -> None:
        """done (or original_failed) → undoing: the undo's intent, recorded before any step."""
        with self._write() as conn:
            self._move(
                conn,
                job_id,
                ("done", "original_failed"),
                "undoing",
                undo=json.dumps(record),
                owner=self.owner_id,  # the undoer's now: recovery leaves a live undo alone
            )

    def undo_step(self, job_id: int, record: dict) -> None:
        """undoing, with what the undo did so far (the original is back: not done again)."""
        with self._write() as conn:
            self._move(conn, job_id, ("undoing",), "undoing", undo=json.dumps(record))

    def end_undo(self, job_id: int, record: dict) -> None:
        """undoing → undone, with what the undo did."""
        with self._write() as conn:
            self._move(conn, job_id, ("undoing",), "undone", undo=json.dumps(record))

    def abandon_undo(self, job_id: int, record: dict) -> None:
        """undoing → done: the undo was refused before it removed anything (a name taken)."""
        with self._write() as conn:
            self._move(conn, job_id, ("undoing",), "done", undo=json.dumps(record))

    def undoing(self) -> list[Job]:
        """Undos an interruption left in state undoing whose owner is gone (an ``amberpicd
        undo`` still running is left to it), oldest first, taken over like ``orphaned``."""
        rows = self._read(f"SELECT {_COLS}, owner FROM jobs WHERE state = 'undoing' ORDER BY id")
        return self._take_gone(rows)

    def latest_of(self, path: Path) -> Job | None:
        """The newest job that processed ``path`` (as its source) or wrote it (an output),
        among those undo knows: done, original_failed, undoing, undone."""
        rows = self._read(
            f"SELECT {_COLS} FROM jobs WHERE state IN"
            " ('done', 'original_failed', 'undoing', 'undone') AND (source = ? OR id IN"
            " (SELECT job_id FROM output_paths WHERE path = ?)) ORDER BY id DESC LIMIT 1",
            (_db(path), _db(path)),
        )
        return _job(rows[0]) if rows else None

    def last_done(self, n: int) -> list[Job]:
        """The ``n`` most recent done jobs, newest first (``undo --last N``); ``n`` at least
        1 (SQLite reads a negative LIMIT as none: every job), any larger count is all."""
        if n < 1:
            raise ValueError(f"the last N jobs: N is at least 1, not {n}")
        rows = self._read(
            f"SELECT {_COLS} FROM jobs WHERE state = 'done' ORDER BY id DESC LIMIT ?",
            (min(n, _MAX_LIMIT),),
        )
        return [_job(r) for r in rows]

    def original_failed(self, job_id: int, error: str) -> None:
        """published → original_failed: outputs are written, the original step failed."""
        with self._write() as conn:
            self._move(
                conn, job_id, ("published",), "original_failed", error=error, finished=self._clock()
            )

    def retry_originals(self, source: Path | None = None) -> list[Job]:
        """original_failed → published for every such job (or those of one source), so the
        original step alone can run again; returns them (in state published) oldest first."""
        where, params = "state = 'original_failed'", []
        if source is not None:
            where, params = "state = 'original_failed' AND source = ?", [_db(source)]
        with self._write() as conn:
            rows = conn.execute(f"SELECT {_COLS} FROM jobs WHERE {where} ORDER BY id", params)
            jobs = [replace(_job(r), state="published") for r in rows.fetchall()]
            conn.execute(
                f"UPDATE jobs SET state = 'published', error = NULL, finished = NULL WHERE {where}",
                params,
            )
        return jobs

    def no_match(self, job_id: int) -> None:
        """running → unmatched: the worker found that no rule applies (a decision)."""
        with self._write() as conn:
            self._move(conn, job_id, ("running",), "unmatched", finished=self._clock())

    def fail(self, job_id: int, error: str) -> None:
        """Any unfinished state → failed, with a one-line error for the user."""
        with self._write() as conn:
            self._move(conn, job_id, UNFINISHED, "failed", error=error, finished=self._clock())

    def supersede(self, job_id: int, reason: str) -> None:
        """Any unfinished state → retry: a later job of the same file does (or did) its work,
        e.g. after this one's records could not be written. Not a decision; pruned later."""
        with self._write() as conn:
            self._move(conn, job_id, UNFINISHED, "retry", error=reason, finished=self._clock())

    def retry(self, source: Path | None = None) -> list[Job]:
        """failed → retry for every failed job (or those of one source, and then an undone
        one too: ``retry PATH`` takes an undone file again), so decision() no longer returns
        them; returns them oldest first (a source may appear more than once)."""
        where, params = "state = 'failed'", []
        if source is not None:
            where, params = "state IN ('failed', 'undone') AND source = ?", [_db(source)]
        with self._write() as conn:
            rows = conn.execute(f"SELECT {_COLS} FROM jobs WHERE {where} ORDER BY id", params)
            jobs = [replace(_job(r), state="retry") for r in rows.fetchall()]
            conn.execute(f"UPDATE jobs SET state = 'retry' WHERE {where}", params)
        return jobs

    def prune(self, keep_days: float) -> int:
        """Forget superseded jobs older than keep_days; returns how many. The latest decision per
        (source, hash, fingerprint) is always kept: it stops a kept original being redone. An
        undo (undoing, undone) is never forgotten: a later job of the same file (done, its
        original moved) does not hold the restored original, and an unfinished undo is to end."""
        cutoff = self._clock() - keep_days * 86400
        with self._write() as conn:
            conn.execute(
                "DELETE FROM staged WHERE job_id IN"
                " (SELECT id FROM jobs WHERE state = 'done' AND finished < ?)",
                (cutoff,),
            )
            cur = conn.execute(
                "DELETE FROM jobs WHERE COALESCE(finished, created) < ? AND (state = 'retry' OR"
                f" ({_IN_DECISIONS} AND state NOT IN ('undoing', 'undone')"
                " AND EXISTS (SELECT 1 FROM jobs AS n"
                " WHERE n.source = jobs.source AND n.content_hash = jobs.content_hash"
                " AND n.fingerprint = jobs.fingerprint"
                f" AND n.id > jobs.id AND n.{_IN_DECISIONS})))",
                (cutoff,),
            )
            self._prune_stat_cache(conn)
            return cur.rowcount

    # --- queries ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        rows = self._read(f"SELECT {_COLS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JournalError(f"{self.path.name}: no job {job_id}")
        return _job(rows[0])

    def staged_outputs(self, job_id: int) -> list[StagedOutput]:
        rows = self._read(
            "SELECT temp, final, on_conflict, published_path, sha256 FROM staged"
            " WHERE job_id = ? ORDER BY n",
            (job_id,),
        )
        return [
            StagedOutput(_path(t), _path(f), c, _path(p) if p else None, h or "")
            for t, f, c, p, h in rows
        ]

    def decision(self, content_hash: str, fingerprint: str) -> Job | None:
        """The latest (highest id) done, failed or unmatched job for this key, or None if due."""
        rows = self._read(
            f"SELECT {_COLS} FROM jobs WHERE content_hash = ? AND fingerprint = ?"
            f" AND {_IN_DECISIONS} ORDER BY id DESC LIMIT 1",
            (content_hash, fingerprint),
        )
        return _job(rows[0]) if rows else None

    def unfinished(self) -> list[Job]:
        """Jobs left running, staged or published (after a crash), oldest first."""
        rows = self._read(f"SELECT {_COLS} FROM jobs WHERE {_IN_UNFINISHED} ORDER BY id")
        return [_job(r) for r in rows]

    def orphaned(self) -> list[Job]:
        """The unfinished jobs whose owner is gone (journal.owners: a crashed daemon or
        ``process`` run), oldest first, taken over: stamped as this writer's. Jobs of a
        live owner (``process`` running beside the daemon) are left to it."""
        rows = self._read(f"SELECT {_COLS}, owner FROM jobs WHERE {_IN_UNFINISHED} ORDER BY id")
        return self._take_gone(rows)

    def _take_gone(self, rows: list[tuple]) -> list[Job]:
        """The jobs of ``rows`` (with the owner as the last column) whose owner is gone,
        stamped as this writer's; dead owners' files are removed. A job whose state or owner
        changed since it was read (a ``begin_file`` took its file over) is not returned."""
        owner = self.owner
        gone = [r for r in rows if owner is None or owner.gone(r[-1])]
        jobs = [_job(r[:-1]) for r in gone]
        if jobs and owner is not None and owner.id is not None:
            cas = "UPDATE jobs SET owner = ? WHERE id = ? AND state = ? AND owner IS ?"
            with self._write() as conn:
                stamped = [conn.execute(cas, (owner.id, r[0], r[5], r[-1])).rowcount for r in gone]
            jobs = [job for job, n in zip(jobs, stamped, strict=True) if n == 1]
        if owner is not None:
            owner.reap()
        return jobs

    def recent(self, limit: int = 20, *, failed_only: bool = False) -> list[Job]:
        """The newest jobs first."""
        where = "WHERE state IN ('failed', 'original_failed')" if failed_only else ""
        rows = self._read(f"SELECT {_COLS} FROM jobs {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [_job(r) for r in rows]

    def counts(self, since: float | None = None) -> dict[str, dict[str, int]]:
        """{inbox path or "": {state: n}}, for jobs created or finished at or after since."""
        where, params = "", ()
        if since is not None:
            where, params = "WHERE created >= ? OR finished >= ?", (since, since)
        rows = self._read(
            f"SELECT COALESCE(inbox, ''), state, COUNT(*) FROM jobs {where} GROUP BY 1, 2", params
        )
        result: dict[str, dict[str, int]] = {}
        for inbox, state, n in rows:
            result.setdefault(os.fsdecode(inbox), {})[state] = n
        return result
