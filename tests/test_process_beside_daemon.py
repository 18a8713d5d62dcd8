"""`amberpicd process` on a file of a watched inbox while the daemon runs: one of the two
processes it, never both (the journal's owner claim). Real daemon, real ``process``
subprocess, real SQLite; each run is stopped with its outputs published and its job not
finished (the test-only ``hang@all_published``), so the other certainly meets it in flight."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, one_inbox, wait_for

CONFIG = one_inbox("keep")
HANG = "AMBERPIC_TEST_CRASH_AT"  # engine/commit.crash_point: "hang@all_published" stops there


@pytest.fixture
def daemon(tmp_path: Path):
    d = DaemonProc(tmp_path, CONFIG)
    d.inbox.mkdir()
    yield d
    d.close()


def jobs(d: DaemonProc) -> list[str]:
    """The state of every job in the shared journal, read as any SQLite reader would."""
    db = d.root / "state" / "amberpic" / "journal.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return [r[0] for r in conn.execute("SELECT state FROM jobs ORDER BY id")]
    except sqlite3.OperationalError:
        return []  # not made yet
    finally:
        conn.close()


def spawn_process(d: DaemonProc, path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    command = ["-c", str(d.config), "process", "-j", "1", str(path)]
    return subprocess.Popen(
        [sys.executable, "-m", "amberpicd", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_process_leaves_an_inbox_file_the_daemon_is_processing(daemon: DaemonProc):
    daemon.env[HANG] = "hang@all_published"  # the daemon stops there, its job unfinished
    daemon.start()
    del daemon.env[HANG]
    src = images.jpeg(daemon.inbox / "a.jpg", (300, 200))
    original = src.read_bytes()
    wait_for(lambda: jobs(daemon) == ["published"], 30, "the daemon's job in flight")
    proc = daemon.cli("process", "-j", "1", str(src), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "skipped a.jpg: being processed by another amberpicd" in proc.stdout, proc.stdout
    assert proc.stderr.splitlines()[-1].startswith("0 done, 1 skipped, 0 failed"), proc.stderr
    assert jobs(daemon) == ["published"]  # process began no job of its own
    daemon.kill()  # the hung daemon: its next start finishes what it left
    daemon.start()
    wait_for(lambda: jobs(daemon) == ["done"] and daemon.idle(), 30, "the recovery")
    assert [p.name for p in files(daemon.out)] == ["a.webp"]  # one set, no a-1.webp
    assert src.read_bytes() == original
    assert daemon.stop() == 0


def test_the_daemon_leaves_an_inbox_file_process_is_processing(daemon: DaemonProc):
    daemon.start()
    assert daemon.cmd("pause")["paused"]
    src = images.jpeg(daemon.inbox / "b.jpg", (300, 200))
    original = src.read_bytes()
    proc = spawn_process(daemon, src, {**daemon.env, HANG: "hang@all_published"})
    try:
        wait_for(lambda: jobs(daemon) == ["published"], 60, "process's job in flight")
        assert daemon.cmd("resume")["paused"] is False
        wait_for(
            lambda: "b.jpg: being processed by another amberpicd" in daemon.logs(),
            30,
            "the daemon to meet the file in flight",
        )
        assert jobs(daemon) == ["published"]  # the daemon began no job of its own
        assert [p.name for p in files(daemon.out)] == ["b.webp"]
    finally:
        proc.kill()  # the hung run: its owner is gone, the file is the daemon's to take
        proc.communicate(timeout=30)
    wait_for(lambda: "done" in jobs(daemon) and daemon.idle(), 30, "the daemon's take-over")
    assert [p.name for p in files(daemon.out)] == ["b.webp"]  # recognised, no b-1.webp
    # The killed run's job is superseded by the daemon's take-over (its temps gone with it),
    # not left published for the next start's recovery to handle the original again.
    assert sorted(jobs(daemon)) == ["done", "retry"]
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


def test_without_a_journal_process_leaves_inbox_files_to_a_running_daemon(tmp_path: Path, capsys):
    """No journal to claim through (here: a folder where journal.db should be): while a
    daemon holds its lock, files of its inboxes are left to it; others are done."""
    from amberpicd.cli.main import main
    from amberpicd.daemon.lock import InstanceLock, daemon_running, lock_path

    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path, settle=0.3))
    (tmp_path / "inbox").mkdir()
    inside = images.jpeg(tmp_path / "inbox" / "in.jpg", (300, 200))
    outside = images.jpeg(tmp_path / "out.jpg", (300, 200))
    (tmp_path / "xdg-state" / "amberpic" / "journal.db").mkdir(parents=True)  # conftest's
    with InstanceLock(lock_path()):  # what a running daemon holds
        assert daemon_running(lock_path())
        code = main(["-c", str(cfg), "process", "-j", "1", str(inside), str(outside)])
        out, err = capsys.readouterr()
    assert code == 0, err
    assert "amberpicd: journal: journal.db: unable to open database file" in err  # one line
    assert "skipped in.jpg: in an inbox of the running daemon" in out, out
    assert [p.name for p in files(tmp_path / "out")] == ["out.webp"]
    assert not daemon_running(lock_path())  # control: no daemon, the inbox file is done
    assert main(["-c", str(cfg), "process", "-j", "1", str(inside)]) == 0
    assert [p.name for p in files(tmp_path / "out")] == ["in.webp", "out.webp"]
