"""Faults around the daemon: full and read-only disks, folders vanishing, moves across
filesystems, a broken or locked journal, repeated kill -9. The real daemon each time."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

import images
import need
import pytest
from daemonproc import DaemonProc, files, wait_for
from PIL import Image

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 2
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
rules:
  - name: web
    pipeline: [auto_orient, {{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def config(originals: str = "keep") -> str:
    return CONFIG.replace("ORIGINALS", originals)


tmpfs = need.tmpfs  # a small filesystem of our own (root: CI and this machine run as root)


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, start: bool = True) -> DaemonProc:
        d = DaemonProc(tmp_path, text)
        procs.append(d)
        return d.start() if start else d

    yield make
    for d in procs:
        d.close()


def temps(folder: Path) -> list[Path]:
    return [p for p in files(folder) if p.name.startswith(".amberpic-")]


def failed_jobs(d: DaemonProc) -> list[dict]:
    return [h for h in d.history() if h["state"] == "failed"]


def test_disk_full_fails_cleanly_and_succeeds_after_retry(daemon, tmp_path):
    with tmpfs(tmp_path / "out", "256k") as out:
        filler = out / "filler.bin"
        filler.write_bytes(b"\0" * 200_000)
        d = daemon(config())
        src = d.inbox / "noise.png"
        Image.frombytes("RGB", (200, 200), random.Random(1).randbytes(120_000)).save(src)
        original = src.read_bytes()
        wait_for(lambda: failed_jobs(d), what="the disk-full failure")
        error = failed_jobs(d)[0]["error"]
        assert error.startswith("noise.png: write failed") and "No space left" in error
        assert files(out) == [filler] and not temps(out)  # nothing partial, no temp file
        assert src.read_bytes() == original
        assert d.status()["ok"]
        filler.unlink()
        assert d.cli("retry").returncode == 0
        wait_for((out / "noise.png").exists, what="the output after retry")
        with Image.open(out / "noise.png") as im:
            im.load()


def test_read_only_output_then_writable_again(daemon, tmp_path):
    with tmpfs(tmp_path / "out", "8m") as out:
        d = daemon(config())
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        images.jpeg(d.inbox / "ro.jpg")
        wait_for(lambda: failed_jobs(d), what="the read-only failure")
        assert "Read-only file system" in failed_jobs(d)[0]["error"]
        subprocess.run(["mount", "-o", "remount,rw", str(out)], check=True)
        assert d.cli("retry").returncode == 0
        wait_for((out / "ro.png").exists)


def test_output_folder_deleted_while_running(daemon):
    d = daemon(config())
    images.jpeg(d.inbox / "one.jpg", description="1")
    wait_for((d.out / "one.png").exists)
    shutil.rmtree(d.out)
    images.jpeg(d.inbox / "two.jpg", description="2")
    wait_for((d.out / "two.png").exists, what="the folder to be made again")


def test_move_originals_across_filesystems(daemon, tmp_path):
    with tmpfs(tmp_path / "archive", "8m") as archive:
        assert os.stat(archive).st_dev != os.stat(tmp_path).st_dev
        d = daemon(config("move"))
        src = images.jpeg(d.inbox / "far.jpg")
        original = src.read_bytes()
        wait_for((archive / "far.jpg").exists, what="the original in the archive")
        wait_for(lambda: not src.exists(), what="the original to leave the inbox")
        assert (archive / "far.jpg").read_bytes() == original
        assert (d.out / "far.png").exists() and not temps(archive)


def test_corrupt_journal_is_kept_aside_and_said(daemon, tmp_path):
    d = daemon(config(), start=False)
    state = tmp_path / "state" / "amberpic"
    state.mkdir(parents=True)
    (state / "journal.db").write_bytes(b"this is not a database" * 100)
    d.start()
    assert any(p.name.startswith("journal.db.corrupt-") for p in state.iterdir())
    assert "journal was unreadable" in d.logs()
    assert d.status()["journal"]["recovered_from"]
    images.jpeg(d.inbox / "fresh.jpg")
    wait_for((d.out / "fresh.png").exists)


def test_locked_journal_is_waited_for_not_fatal(daemon, tmp_path):
    d = daemon(config(), start=False)
    state = tmp_path / "state" / "amberpic"
    state.mkdir(parents=True)
    holder = sqlite3.connect(state / "journal.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    d.start(wait=False)
    wait_for(lambda: "locked" in d.logs(), what="the daemon to say the journal is locked")
    assert d.proc.poll() is None  # still running, waiting for the lock
    holder.execute("ROLLBACK")
    holder.close()
    wait_for(d.ready, 30, "the daemon to start once the lock is gone")
    images.jpeg(d.inbox / "after.jpg")
    wait_for((d.out / "after.png").exists)


@pytest.mark.slow
def test_repeated_kill_9_during_a_burst(daemon):
    d = daemon(config())
    n = 150
    for i in range(n):
        images.jpeg(d.inbox / f"f{i:03}.jpg", (200, 150), description=str(i))
    rng = random.Random(7)
    for _ in range(4):
        target = min(n, len(files(d.out)) + rng.randint(5, 25))
        wait_for(lambda t=target: len(files(d.out)) >= t, 60, "some progress")
        d.kill()
        d.start()
    wait_for(lambda: len(files(d.out)) >= n, 120, "every output")
    wait_for(d.idle)
    assert sorted(p.name for p in files(d.out)) == sorted(f"f{i:03}.png" for i in range(n))
    assert not temps(d.out)
    done = [h for h in d.history() if h["state"] == "done"]
    assert len(done) == n
