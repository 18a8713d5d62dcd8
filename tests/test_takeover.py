"""``begin_file`` taking a file over from a dead owner (a killed ``process`` run or daemon)
finishes that owner's job in the same transaction: its temps removed (``take_over``), the job
superseded, so no recovery later redoes it; and a recovery that read the job before the
take-over does not take it after. Real SQLite, two writers on one journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from amberpicd.errors import FileBusy
from amberpicd.fs.identity import FileIdentity
from amberpicd.journal import Journal, StagedOutput
from amberpicd.journal.rows import _COLS, _IN_UNFINISHED


def dead_owners_job(db: Path, src: Path, state: str) -> int:
    """A job of ``src`` left in ``state`` by a writer that is gone (closed: its flock too)."""
    identity = FileIdentity.of(src.stat())
    gone = Journal(db)
    job = gone.begin_file(src, "fp", inbox=None, identity=identity)
    if state != "running":
        gone.identify(job, "h", identity)
        temp, final = src.with_name(f".amberpic-{job}-0.jpg.tmp"), src.with_name("a-web.jpg")
        gone.stage(job, [StagedOutput(temp, final, "rename", sha256="s")])
    if state == "published":
        gone.published(job, [src.with_name("a-web.jpg")])
    gone.close()  # as a kill -9 would
    return job


@pytest.mark.parametrize("state", ["running", "staged", "published"])
def test_a_dead_owners_job_is_taken_over_and_superseded(tmp_path, state):
    db, src = tmp_path / "journal.db", tmp_path / "a.jpg"
    src.write_bytes(b"x")
    old = dead_owners_job(db, src, state)
    swept: list[int] = []
    with Journal(db) as second:
        new = second.begin_file(
            src, "fp", inbox=None, identity=FileIdentity.of(src.stat()), take_over=swept.append
        )
        assert swept == [old]
        assert second.get(old).state == "retry"
        assert second.get(old).error == "a.jpg: taken over by a later run (its owner was gone)"
        assert second.staged_outputs(old) == []
        assert [j.id for j in second.unfinished()] == [new]
    with Journal(db) as recovery:  # the daemon's next start: nothing of the old job to redo
        assert [j.id for j in recovery.orphaned()] == [new]  # (the second run's, gone now)


def test_a_live_owners_job_is_not_taken_over(tmp_path):
    db, src = tmp_path / "journal.db", tmp_path / "a.jpg"
    src.write_bytes(b"x")
    identity = FileIdentity.of(src.stat())
    live = Journal(db)
    try:
        job = live.begin_file(src, "fp", inbox=None, identity=identity)
        swept: list[int] = []
        with Journal(db) as second, pytest.raises(FileBusy):
            second.begin_file(src, "fp", inbox=None, identity=identity, take_over=swept.append)
        assert swept == [] and live.get(job).state == "running"
    finally:
        live.close()


def test_our_own_unfinished_job_is_not_taken_over(tmp_path):
    db, src = tmp_path / "journal.db", tmp_path / "a.jpg"
    src.write_bytes(b"x")
    identity = FileIdentity.of(src.stat())
    with Journal(db) as j:  # in flight here (a path named twice): left to its commit
        first = j.begin_file(src, "fp", inbox=None, identity=identity)
        swept: list[int] = []
        j.begin_file(src, "fp", inbox=None, identity=identity, take_over=swept.append)
        assert swept == [] and j.get(first).state == "running"


def test_a_recovery_does_not_take_a_job_taken_over_since_it_read_it(tmp_path):
    db, src = tmp_path / "journal.db", tmp_path / "a.jpg"
    src.write_bytes(b"x")
    old = dead_owners_job(db, src, "staged")
    with Journal(db) as recovery, Journal(db) as second:
        rows = recovery._read(f"SELECT {_COLS}, owner FROM jobs WHERE {_IN_UNFINISHED}")
        assert [r[0] for r in rows] == [old]  # control: read while still unfinished
        second.begin_file(src, "fp", inbox=None, identity=FileIdentity.of(src.stat()))
        assert recovery._take_gone(rows) == []  # superseded meanwhile: not recovery's
        assert second.get(old).state == "retry"
