"""The journal's SQLite file: opening it safely, its schema, and the transaction helpers.

WAL with synchronous=FULL, a busy timeout, a lock held by another process reported as such, a
corrupt file moved aside and started afresh, and schema migrations by PRAGMA user_version.
``read_only=True`` (``amberpicd history``) opens an existing file with SQLite's ``mode=ro`` and
never creates, migrates or repairs it; ``repair=False`` (``amberpicd process``) writes but
reports a corrupt file instead of moving it aside. A writer remembers which file it opened
(device and inode) and refuses to write once the path names another file or none (the
journal was deleted or replaced under it); ``reopen()`` then starts on whatever the path
holds now. A writer also holds its owner lock (``owners.OwnerLock``) while open.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from amberpicd.errors import (
    JournalError,
    JournalGone,
    JournalLocked,
    JournalReadOnly,
    error_text,
)
from amberpicd.journal.owners import OwnerLock

# _MIGRATIONS[i] brings user_version i to i + 1; append new tuples, never edit old ones.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: "latest" means highest id
            source TEXT NOT NULL, inbox TEXT,
            content_hash TEXT NOT NULL, fingerprint TEXT NOT NULL,
            state TEXT NOT NULL, rules TEXT NOT NULL DEFAULT '[]',
            outputs TEXT NOT NULL DEFAULT '[]', error TEXT,
            size INTEGER NOT NULL DEFAULT 0, mtime_ns INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL, started REAL, finished REAL)""",
        "CREATE INDEX jobs_key ON jobs (content_hash, fingerprint, id)",
        "CREATE INDEX jobs_state ON jobs (state, id)",
        "CREATE INDEX jobs_source ON jobs (source)",
        """CREATE TABLE staged (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            n INTEGER NOT NULL, temp TEXT NOT NULL, final TEXT NOT NULL,
            on_conflict TEXT NOT NULL, published_path TEXT,
            PRIMARY KEY (job_id, n))""",
        # Paths we wrote or are about to write, so the watcher never re-ingests our outputs.
        """CREATE TABLE output_paths (
            path TEXT NOT NULL, job_id INTEGER NOT NULL,
            PRIMARY KEY (path, job_id)) WITHOUT ROWID""",
    ),
    (
        # A file is its path and its content: the identity (dev, ino, size, mtime_ns,
        # ctime_ns) of what the worker read, and the originals policy the job applied
        # (a done job whose original was moved away does not decide a new file there).
        "ALTER TABLE jobs ADD COLUMN dev INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN ino INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN originals TEXT NOT NULL DEFAULT 'keep'",
        "ALTER TABLE jobs ADD COLUMN duplicate_of INTEGER",  # duplicates: skip; that job's id
        "CREATE INDEX jobs_file ON jobs (source, fingerprint, content_hash, id)",
        # What the content of an unchanged inode hashes to, so scans need not read it.
        """CREATE TABLE stat_cache (
            dev INTEGER NOT NULL, ino INTEGER NOT NULL,
            size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            PRIMARY KEY (dev, ino)) WITHOUT ROWID""",
    ),
    (
        # Undo (issue 15): where the original went (JSON: kept / moved to / trashed as /
        # deleted), the undo's own record (JSON), and each staged output's sha256 (copied
        # into its jobs.outputs entry when published), so undo removes only unchanged outputs.
        "ALTER TABLE jobs ADD COLUMN original TEXT",
        "ALTER TABLE jobs ADD COLUMN undo TEXT",
        "ALTER TABLE staged ADD COLUMN sha256 TEXT",
    ),
    (
        # Which process began the job (journal.owners): recovery takes only jobs whose
        # owner is gone, never an ``amberpicd process`` run's jobs in flight beside it.
        "ALTER TABLE jobs ADD COLUMN owner TEXT",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
_S = TypeVar("_S", bound="Store")


def _db(path: str | os.PathLike[str]) -> str | bytes:
    """A path as stored: text, or its raw bytes (a BLOB) when the name is not UTF-8. Linux
    allows such names and SQLite text must be UTF-8; a path always maps to the same value."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def _path(value: str | bytes) -> Path:
    return Path(os.fsdecode(value))


def _code(exc: sqlite3.Error) -> int:
    return getattr(exc, "sqlite_errorcode", -1) & 0xFF  # primary result code (Python 3.11+)


def _is_busy(exc: sqlite3.Error) -> bool:
    return _code(exc) in (5, 6) or "database is locked" in str(exc)  # SQLITE_BUSY, SQLITE_LOCKED


def _is_corrupt(exc: sqlite3.Error) -> bool:
    msg = str(exc)
    return _code(exc) in (11, 26) or "not a database" in msg or "malformed" in msg


class _Corrupt(Exception):
    pass


class Store:
    """One SQLite connection behind a lock; the Journal builds its job API on top."""

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        read_only: bool = False,
        repair: bool = True,
    ):
        self.path = Path(path)
        self.recovered_from: Path | None = None  # where a corrupt journal was moved, if it was
        self.read_only = read_only
        self._timeout = timeout
        self._lock = threading.RLock()
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self.writes = 0  # transactions committed through this object
        self.owner: OwnerLock | None = None  # a writer's claim on the jobs it begins
        if read_only:
            self._conn = self._open_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = error_text(exc)
            raise JournalError(f"{self.path.name}: cannot create folder: {reason}") from exc
        try:
            self._conn: sqlite3.Connection | None = self._open()
        except _Corrupt as exc:
            if not repair:  # ``process``: only the daemon moves a corrupt journal aside
                raise JournalError(
                    f"{self.path.name}: corrupt; the daemon starts a fresh one when it starts"
                ) from exc
            self.recovered_from = self._move_aside()
            try:
                self._conn = self._open()
            except _Corrupt as exc:
                raise JournalError(
                    f"{self.path.name}: still corrupt after moving it aside"
                ) from exc
        self.owner = OwnerLock(self.path)

    @property
    def owner_id(self) -> str | None:
        """What this writer stamps on the jobs it begins (journal.owners)."""
        return self.owner.id if self.owner is not None else None

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise JournalError(f"{self.path.name}: no journal at {self.path}")
        uri = f"file:{urllib.parse.quote(os.fspath(self.path.absolute()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self._timeout, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        if version != SCHEMA_VERSION:
            conn.close()
            if version > SCHEMA_VERSION:
                raise JournalError(f"{self.path.name}: made by a newer amberpicd (v{version})")
            raise JournalError(
                f"{self.path.name}: made by an older amberpicd (v{version});"
                " start the daemon once to upgrade it"
            )
        return conn

    def _stat_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check(self) -> str | None:
        """None while the path still names the file we opened; else what happened to it."""
        if self.read_only or self._identity is None:
            return None
        now = self._stat_identity()
        if now == self._identity:
            return None
        what = "deleted" if now is None else "replaced by another file"
        return f"{self.path.name} was {what} while the daemon was running"

    def reopen(self) -> None:
        """Close and open the path again (creating a fresh journal if it is gone)."""
        with self._lock:
            if self._conn is not None:
                with suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(f"{self.path.name}: cannot create folder: {exc}") from exc
            try:
                self._conn = self._open()
            except _Corrupt:
                self.recovered_from = self._move_aside()
                self._conn = self._open()

    def _error(self, exc: sqlite3.Error) -> JournalError:
        if _is_busy(exc):
            return JournalLocked(f"{self.path.name}: locked by another process")
        try:  # the filesystem says so, whatever words SQLite chose ("unable to open", ...)
            read_only = bool(os.statvfs(self.path.parent).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        if read_only:
            return JournalReadOnly(f"{self.path.name}: its filesystem is mounted read-only")
        return JournalError(f"{self.path.name}: {exc}")

    def _open(self) -> sqlite3.Connection:
        try:  # e.g. a folder where the file should be: one line, never a traceback
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"{self.path.name}: cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            if conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                raise _Corrupt
            self._migrate(conn)
            self._identity = self._stat_identity()
            return conn
        except sqlite3.Error as exc:
            conn.close()
            if _is_corrupt(exc):
                raise _Corrupt from exc
            raise self._error(exc) from exc
        except BaseException:
            conn.close()
            raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # Runs in BEGIN IMMEDIATE, which also proves at open that nobody else holds the lock.
        with self._tx(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"{self.path.name}: made by a newer amberpicd (v{version})")
            for statement in (s for m in _MIGRATIONS[version:] for s in m):
                conn.execute(statement)
            if version != SCHEMA_VERSION:  # else it writes nothing: a full disk still opens
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _move_aside(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        dest = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while dest.exists():
            dest = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(self.path, dest)
            for suffix in ("-wal", "-shm"):  # closing may already have checkpointed/dropped them
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    os.replace(side, f"{dest}{suffix}")
        except OSError as exc:
            raise JournalError(
                f"{self.path.name}: corrupt and cannot be moved aside: {exc}"
            ) from exc
        return dest

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self.owner is not None:
                self.owner.release()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"{self.path.name}: journal is closed")
        return self._conn

    @contextmanager
    def _tx(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One committed transaction; IMMEDIATE so a lock shows up at BEGIN, not mid-way."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise JournalError(f"{self.path.name}: opened read-only")
        with self._lock:
            problem = self.check()  # a write to a deleted file would be lost at the next start
            if problem is not None:
                raise JournalGone(problem)
            with self._tx(self._live()) as conn:
                yield conn
            self.writes += 1

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def pragma(self, name: str) -> object:
        """The value of a PRAGMA on the journal's own connection (diagnostics, tests)."""
        if not name.isidentifier():
            raise JournalError(f"{self.path.name}: bad pragma name {name!r}")
        return self._read(f"PRAGMA {name}")[0][0]
