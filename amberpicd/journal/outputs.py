"""Which paths the journal knows as outputs, and whose: never ingest our own outputs, and
tell an output a later job wrote again (undo leaves it) from one only this job wrote."""

from __future__ import annotations

from pathlib import Path

from amberpicd.journal.files import FileQueries
from amberpicd.journal.rows import _IN_UNFINISHED
from amberpicd.journal.store import _db, _path


class OutputQueries(FileQueries):
    """Queries over ``output_paths`` (every path a job wrote or is about to write)."""

    def other_writer(self, path: Path, job_id: int) -> int | None:
        """Another job, not undone, that wrote (or is writing) ``path``: a later run that
        overwrote it with the same bytes. Undo of ``job_id`` then leaves it."""
        rows = self._read(
            "SELECT o.job_id FROM output_paths AS o JOIN jobs AS j ON j.id = o.job_id"
            f" WHERE o.path = ? AND o.job_id != ? AND (j.state IN ('done', 'original_failed')"
            f" OR j.{_IN_UNFINISHED}) LIMIT 1",
            (_db(path), job_id),
        )
        return rows[0][0] if rows else None

    def output_sources(self, path: Path) -> set[Path]:
        """The source files of the jobs that wrote (or are writing) ``path``."""
        rows = self._read(
            "SELECT DISTINCT j.source FROM output_paths AS o JOIN jobs AS j ON j.id = o.job_id"
            " WHERE o.path = ?",
            (_db(path),),
        )
        return {_path(r[0]) for r in rows}

    def published_by(self, path: Path, source: Path) -> bool:
        """Whether a job of ``source`` published ``path`` (recorded as published: a name
        only noted before a link proves nothing)."""
        rows = self._read(
            "SELECT 1 FROM output_paths AS o JOIN jobs AS j ON j.id = o.job_id"
            " WHERE o.path = ? AND j.source = ?"
            " AND j.state IN ('published', 'done', 'original_failed') LIMIT 1",
            (_db(path), _db(source)),
        )
        return bool(rows)

    def is_output(self, path: Path) -> bool:
        """Whether path is an output (or temp) we wrote or are writing: never ingest it."""
        rows = self._read("SELECT 1 FROM output_paths WHERE path = ? LIMIT 1", (_db(path),))
        return bool(rows)
