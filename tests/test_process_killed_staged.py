"""``amberpicd process`` killed -9 while its job is ``staged`` (the outputs written as temps and
recorded, none published yet: the test-only crash point ``recorded``), then the file done
again by a second ``process`` run and the daemon's recovery, in either order, the daemon
running beside the second run or not. Whatever the order: one set of outputs (no ``-1``
copy), the original handled once, no temp left, and every job of the file decided or
superseded (no job left for a later recovery to redo). Real daemon, real ``process``
subprocesses, real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, one_inbox, wait_for

CRASH = "AMBERPIC_TEST_CRASH_AT"  # engine/commit.crash_point: "recorded" dies right after stage


def jobs(d: DaemonProc) -> list[tuple[int, str]]:
    db = d.root / "state" / "amberpic" / "journal.db"
    conn = sqlite3.connect(db, timeout=5)
    try:
        return [tuple(r) for r in conn.execute("SELECT id, state FROM jobs ORDER BY id")]
    finally:
        conn.close()


def process(d: DaemonProc, *, crash: str | None = None):
    env = {**d.env, CRASH: crash} if crash else d.env
    saved, d.env = d.env, env
    try:
        return d.cli("process", "-j", "1", str(d.inbox), timeout=120)
    finally:
        d.env = saved


def killed_while_staged(d: DaemonProc) -> int:
    """A first run, killed -9 with its job staged; returns that job's id."""
    proc = process(d, crash="recorded")
    assert proc.returncode == -9, proc.stderr
    (job,) = jobs(d)
    assert job[1] == "staged", job  # control: the crash left what the attack is about
    assert [p.name for p in files(d.out)] == [f".amberpic-{job[0]}-0.webp.tmp"]
    return job[0]


def recovered(d: DaemonProc) -> None:
    """The daemon started and idle with nothing unfinished in the journal."""
    d.start()
    wait_for(
        lambda: d.idle() and not [j for j in jobs(d) if j[1] in ("running", "staged", "published")],
        30,
        "the recovery",
    )


def check(d: DaemonProc, originals: str, original: bytes) -> None:
    assert [p.name for p in files(d.out)] == ["a.webp"]  # one set: no a-1.webp, no temp
    if originals == "move":
        assert [p.name for p in files(d.inbox)] == []
        assert [p.name for p in files(d.root / "archive")] == ["a.jpg"]  # moved once
        assert (d.root / "archive" / "a.jpg").read_bytes() == original
    else:
        assert (d.inbox / "a.jpg").read_bytes() == original
    states = [s for _, s in jobs(d)]
    assert states.count("done") == 1, states  # the file decided once
    assert set(states) <= {"done", "retry"}, states  # nothing left for a recovery to redo
    errors = [line for line in d.logs().splitlines() if "ERROR" in line]
    assert errors == [], d.logs()  # e.g. "vanished after an interruption": a job redone


@pytest.fixture(params=["keep", "move"])
def daemon(tmp_path: Path, request):
    d = DaemonProc(tmp_path, one_inbox(request.param))
    d.inbox.mkdir()
    d.originals = request.param
    yield d
    d.close()


def test_a_second_run_then_the_daemon(daemon: DaemonProc):
    src = images.jpeg(daemon.inbox / "a.jpg", (300, 200))
    original = src.read_bytes()
    killed_while_staged(daemon)
    again = process(daemon)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in files(daemon.out)] == ["a.webp"]  # the killed run's temp: gone
    recovered(daemon)
    check(daemon, daemon.originals, original)
    assert daemon.stop() == 0


def test_the_daemon_then_a_second_run_beside_it(daemon: DaemonProc):
    src = images.jpeg(daemon.inbox / "a.jpg", (300, 200))
    original = src.read_bytes()
    killed_while_staged(daemon)
    recovered(daemon)  # recovery publishes the staged temp and handles the original
    assert [p.name for p in files(daemon.out)] == ["a.webp"]
    again = process(daemon)
    assert again.returncode == 0, again.stderr
    check(daemon, daemon.originals, original)
    assert daemon.stop() == 0
    again = process(daemon)  # and once the daemon is gone
    assert again.returncode == 0, again.stderr
    check(daemon, daemon.originals, original)


def test_the_daemon_killed_while_staged_then_a_process_run_then_its_restart(daemon: DaemonProc):
    """The same with the daemon as the killed writer: the ``process`` run takes its job over."""
    daemon.env[CRASH] = "recorded"
    daemon.start()
    src = images.jpeg(daemon.inbox / "a.jpg", (300, 200))
    original = src.read_bytes()
    daemon.proc.wait(30)
    assert daemon.proc.returncode == -9, daemon.logs()
    daemon.kill()  # its workers too
    del daemon.env[CRASH]
    assert [s for _, s in jobs(daemon)] == ["staged"]  # control: what the attack is about
    again = process(daemon)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in files(daemon.out)] == ["a.webp"]  # the killed daemon's temp: gone
    recovered(daemon)
    check(daemon, daemon.originals, original)
    assert daemon.stop() == 0
