"""Recovery takes only the jobs of owners that are gone: ``amberpicd process`` and the
daemon on one journal at once, on the real daemon and the real CLI as subprocesses."""

from __future__ import annotations

import subprocess
import sys

import pytest
from daemonproc import files, wait_for
from test_commitflow import WEBP_SLOW, config, daemon, noise, states, temps  # noqa: F401


def recorded(d) -> list[str]:
    """The jobs' states once the journal exists (``process`` creates it)."""
    return states(d) if (d.root / "state" / "amberpic" / "journal.db").exists() else []


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_daemon_start_leaves_a_running_process_runs_jobs_alone(daemon, tmp_path):  # noqa: F811
    d = daemon(config("keep", slow=WEBP_SLOW), start=False)
    elsewhere = noise(tmp_path / "elsewhere" / "n.png", 1000)  # in no inbox: process's only
    proc = subprocess.Popen(
        [sys.executable, "-m", "amberpicd", "-c", str(d.config), "process", str(elsewhere)],
        env=d.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: recorded(d) == ["running"], 30, "process's job to be recorded")
        d.start()  # recovery runs before the daemon answers status
        assert proc.poll() is None, "control: process was still in flight at the start"
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert "journal" not in err, err  # it kept its journal: nobody took its job
    assert "interrupted" not in d.logs(), d.logs()
    assert states(d) == ["done"]
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert not temps(d.out) and elsewhere.exists()


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_a_killed_process_runs_jobs_are_recovered_at_the_next_start(daemon, tmp_path):  # noqa: F811
    d = daemon(config("move", slow=WEBP_SLOW), start=False)
    src = noise(d.inbox / "n.png", 1000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "amberpicd", "-c", str(d.config), "process", str(src)],
        env=d.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: recorded(d) == ["running"], 30, "process's job to be recorded")
    proc.kill()  # its owner lock goes with it
    proc.wait()
    d.start()
    wait_for(lambda: states(d) == ["done"], 90, "the daemon to finish the orphaned job")
    assert "interrupted" in d.logs()
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert [p.name for p in files(d.root / "archive")] == ["n.png"]
    assert not temps(d.out) and not src.exists()


def test_orphaned_takes_only_jobs_whose_owner_is_gone(tmp_path):
    from amberpicd.fs.identity import FileIdentity
    from amberpicd.journal import Journal
    from amberpicd.journal.owners import owners_dir

    db, src = tmp_path / "journal.db", tmp_path / "a.jpg"
    src.write_bytes(b"x")
    identity = FileIdentity.of(src.stat())
    other = Journal(db)  # another process's writer (flock: one per open file, any process)
    job = other.begin_file(src, "fp", inbox=None, identity=identity)
    with Journal(db) as mine:
        assert mine.orphaned() == [], "a live owner's running job was taken"
        assert other.unfinished()[0].id == job  # control: it is unfinished
        other.close()  # as a kill -9 would: the flock goes with the descriptor
        assert [j.id for j in mine.orphaned()] == [job]
        assert sorted(p.name for p in owners_dir(db).iterdir()) == [mine.owner_id]
        mine.fail(job, "a.jpg: taken over")
    assert list(owners_dir(db).iterdir()) == []  # a clean close leaves no owner file


def test_jobs_of_an_older_journal_without_owners_are_recovered(tmp_path):
    import sqlite3

    from amberpicd.journal import Journal
    from amberpicd.journal.store import _MIGRATIONS

    db = tmp_path / "journal.db"
    conn = sqlite3.connect(db)
    for statement in (s for m in _MIGRATIONS[:2] for s in m):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO jobs (source, content_hash, fingerprint, state, created)"
        " VALUES ('/in/a.jpg', 'h1', 'fp', 'running', 1.0)"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Journal(db) as j:
        assert [job.id for job in j.orphaned()] == [1]


def test_an_undo_in_flight_is_left_to_its_live_owner(tmp_path):
    from amberpicd.fs.identity import FileIdentity
    from amberpicd.journal import Journal

    db, src = tmp_path / "journal.db", tmp_path / "a.jpg"
    src.write_bytes(b"x")
    identity = FileIdentity.of(src.stat())
    with Journal(db) as first:  # the daemon that did the job, gone since
        job = first.begin_file(src, "fp", inbox=None, identity=identity)
        first.identify(job, "h", identity)
        first.stage(job, [])
        first.published(job, [])
        first.finish(job)
    undoer = Journal(db)  # ``amberpicd undo``, still running
    undoer.begin_undo(job, {"started": 1.0})
    with Journal(db) as recoverer:
        assert recoverer.undoing() == [], "a live undo was taken over"
        undoer.close()  # as a kill -9 would
        assert [j.id for j in recoverer.undoing()] == [job]
