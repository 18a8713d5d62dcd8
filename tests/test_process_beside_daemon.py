"""`amberpicd process` on a file of a watched inbox while the daemon runs: one of the two
processes it, never both (the journal's owner claim). Real daemon, real ``process``
subprocess, real SQLite; each run is frozen (SIGSTOP) with its job begun, so the other
certainly meets it in flight."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, _descendants, files, wait_for

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: keep
rules:
  - name: web
    pipeline: [{{resize: {{width: 64}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
    on_conflict: rename
"""


@pytest.fixture
def daemon(tmp_path: Path):
    d = DaemonProc(tmp_path, CONFIG)
    d.inbox.mkdir()
    yield d
    d.close()


def jobs(d: DaemonProc) -> list[tuple[str, str]]:
    """(state, owner) of every job in the shared journal, read as any SQLite reader would."""
    db = d.root / "state" / "amberpic" / "journal.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute("SELECT state, owner FROM jobs ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []  # not made yet
    finally:
        conn.close()


def running(d: DaemonProc) -> bool:
    return any(state in ("running", "staged", "published") for state, _ in jobs(d))


def spawn_process(d: DaemonProc, path: Path) -> subprocess.Popen[str]:
    command = ["-c", str(d.config), "process", "-j", "1", str(path)]
    return subprocess.Popen(
        [sys.executable, "-m", "amberpicd", *command],
        env=d.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def freeze(pids: list[int], sig: int) -> None:
    for pid in pids:
        os.kill(pid, sig)


def write_locked(d: DaemonProc) -> bool:
    conn = sqlite3.connect(d.root / "state" / "amberpic" / "journal.db", timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def freeze_in_flight(d: DaemonProc, pids: list[int]) -> None:
    """SIGSTOP ``pids`` with a job in flight and no journal write lock held (a run frozen
    inside a transaction would block the other for another reason than the one tested)."""
    deadline = time.monotonic() + 30
    while True:
        freeze(pids, signal.SIGSTOP)
        if not write_locked(d):
            assert running(d), "control: the job must still be in flight when frozen"
            return
        freeze(pids, signal.SIGCONT)
        assert time.monotonic() < deadline, "could not freeze the run between two writes"
        time.sleep(0.01)  # let it finish its transaction


def test_process_leaves_an_inbox_file_the_daemon_is_processing(daemon: DaemonProc):
    daemon.start()
    src = images.jpeg(daemon.inbox / "a.jpg", (2400, 1800))
    original = src.read_bytes()
    wait_for(lambda: running(daemon), 30, "the daemon's job to begin")
    frozen = daemon.pids()
    freeze_in_flight(daemon, frozen)  # its job stays in flight, its owner lock held
    try:
        proc = spawn_process(daemon, src)
        out, err = proc.communicate(timeout=120)
    finally:
        freeze(frozen, signal.SIGCONT)
    assert proc.returncode == 0, err
    assert "skipped a.jpg: being processed by another amberpicd" in out, (out, err)
    assert err.splitlines()[-1].startswith("0 done, 1 skipped, 0 failed"), err
    wait_for(lambda: daemon.idle() and not running(daemon), 30, "the daemon to finish")
    assert [p.name for p in files(daemon.out)] == ["a.webp"]  # one set, no a-1.webp
    assert [state for state, _ in jobs(daemon)] == ["done"]  # handled once
    assert src.read_bytes() == original
    assert daemon.stop() == 0


def test_the_daemon_leaves_an_inbox_file_process_is_processing(daemon: DaemonProc):
    daemon.start()
    assert daemon.cmd("pause")["paused"]
    src = images.jpeg(daemon.inbox / "b.jpg", (2400, 1800))
    original = src.read_bytes()
    proc = spawn_process(daemon, src)
    try:
        wait_for(lambda: running(daemon), 60, "process's job to begin")
        frozen = [proc.pid, *_descendants(proc.pid)]
        freeze_in_flight(daemon, frozen)
        try:
            assert daemon.cmd("resume")["paused"] is False
            wait_for(
                lambda: "b.jpg: being processed by another amberpicd" in daemon.logs(),
                30,
                "the daemon to meet the file in flight",
            )
        finally:
            freeze(frozen, signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.splitlines()[-1].startswith("1 done, 0 skipped, 0 failed"), err
    # The daemon looks again once process is done: the file is done, nothing repeated.
    wait_for(lambda: "b.jpg: already processed" in daemon.logs(), 30, "the daemon's second look")
    wait_for(daemon.idle, 30, "the daemon idle")
    assert [p.name for p in files(daemon.out)] == ["b.webp"]  # one set, no b-1.webp
    assert [state for state, _ in jobs(daemon)] == ["done"]
    assert src.read_bytes() == original
    assert daemon.stop() == 0


def test_begin_file_gives_a_file_in_flight_to_one_live_writer(tmp_path: Path):
    """The claim itself, on two writers of one real journal (two owner locks)."""
    from amberpicd.errors import FileBusy
    from amberpicd.fs.identity import FileIdentity
    from amberpicd.journal import Journal

    photo, other = images.jpeg(tmp_path / "a.jpg"), images.jpeg(tmp_path / "b.jpg")
    ident = FileIdentity.of(os.lstat(photo))
    db = tmp_path / "j.db"
    first, second = Journal(db), Journal(db)
    try:
        job = first.begin_file(photo, "fp", inbox=None, identity=ident)
        assert first.begin_file(photo, "fp", inbox=None, identity=ident)  # its own: allowed
        with pytest.raises(FileBusy, match=rf"a\.jpg: being processed .*pid {os.getpid()}"):
            second.begin_file(photo, "fp", inbox=None, identity=ident)
        assert second.begin_file(other, "fp", inbox=None, identity=ident)  # control
        first.fail(job, "a.jpg: broken")
        with pytest.raises(FileBusy):  # the other job of the first writer is still running
            second.begin_file(photo, "fp", inbox=None, identity=ident)
        first.close()  # its owner is gone: what it left running is anyone's
        assert second.begin_file(photo, "fp", inbox=None, identity=ident)
    finally:
        first.close()
        second.close()
