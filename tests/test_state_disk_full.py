"""The state folder's disk full when the daemon starts (after a crash): it starts anyway,
says in one line (log and status) that the journal cannot be written and why, processes
nothing it could not journal, and goes on by itself once there is room. Real daemon, real
tmpfs as the state folder, real SQLite."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import images
import need
from daemonproc import DaemonProc, files, one_inbox, wait_for

CONFIG = one_inbox("move")


def fill(folder: Path) -> Path:
    """Write one file until the filesystem of ``folder`` has no byte left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):  # then the last bytes, one by one
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    try:
        (folder / "probe").write_bytes(b"x")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("control: the state disk must be full")
    return filler


def first_output(d: DaemonProc) -> None:
    """Starts the daemon and waits for one file done: the journal (and its WAL) exist."""
    d.start()
    images.jpeg(d.inbox / "first.jpg", (300, 200))
    wait_for(lambda: (d.out / "first.webp").exists() and d.idle(), 30, "first.webp")


def test_a_full_state_disk_at_start_holds_work_and_resumes(tmp_path: Path):
    with need.tmpfs(tmp_path / "state", "4m") as state:
        d = DaemonProc(tmp_path, CONFIG)
        d.inbox.mkdir()
        try:
            first_output(d)
            d.kill()  # a crash: the journal's WAL is left as it was
            filler = fill(state)
            src = images.jpeg(d.inbox / "a.jpg", (300, 200))
            original = src.read_bytes()
            d.start()  # today: exits with "journal.db: database or disk is full"
            status = wait_for(
                lambda: (s := d.status())["journal"]["error"] and s, 30, "the journal error"
            )
            assert "journal.db: database or disk is full" in status["journal"]["error"], status
            lines = [line for line in d.logs().splitlines() if "journal" in line and "full" in line]
            assert len(lines) == 1, d.logs()
            assert src.read_bytes() == original and files(d.out) == [d.out / "first.webp"]
            assert d.status()["ok"]  # still up, still holding
            filler.unlink()  # room again: it goes on by itself
            wait_for(lambda: (d.out / "a.webp").exists() and not src.exists(), 60, "a.webp")
            wait_for(d.idle, 30, "idle")
            assert d.status()["journal"]["error"] is None
            assert sorted((h["state"], Path(h["source"]).name) for h in d.history()) == [
                ("done", "a.jpg"),
                ("done", "first.jpg"),
            ]
            assert d.stop() == 0
        finally:
            d.close()


def test_a_job_left_unfinished_waits_for_room_and_is_finished_once(tmp_path: Path):
    """The crash left a job published but not finished: its recovery needs the journal too,
    so it waits (nothing taken before it), then finishes: one set of outputs, no ``-1``."""
    with need.tmpfs(tmp_path / "state", "4m") as state:
        d = DaemonProc(tmp_path, CONFIG)
        d.inbox.mkdir()
        try:
            d.env["AMBERPIC_TEST_CRASH_AT"] = "all_published"
            d.start()
            src = images.jpeg(d.inbox / "a.jpg", (300, 200))
            original = src.read_bytes()
            wait_for(lambda: d.proc.poll() is not None, 30, "the crash after publishing")
            d.kill()  # its workers too
            del d.env["AMBERPIC_TEST_CRASH_AT"]
            assert (d.out / "a.webp").exists() and src.exists()  # control: left unfinished
            filler = fill(state)
            d.start()
            status = wait_for(
                lambda: (s := d.status())["journal"]["error"] and s, 30, "the journal error"
            )
            assert "journal.db: database or disk is full" in status["journal"]["error"], status
            assert src.read_bytes() == original and files(d.out) == [d.out / "a.webp"]
            filler.unlink()
            wait_for(lambda: not src.exists(), 60, "the original moved once there is room")
            wait_for(d.idle, 30, "idle")
            assert files(d.out) == [d.out / "a.webp"]  # its outputs recognised, no a-1.webp
            assert files(d.root / "archive") == [d.root / "archive" / "a.jpg"]
            assert (d.root / "archive" / "a.jpg").read_bytes() == original
            assert [h["state"] for h in d.history()] == ["done"]
            assert d.stop() == 0
        finally:
            d.close()
