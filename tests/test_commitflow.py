"""The commit flow under faults, on the real daemon: a skipped output keeps the original, a
failed original step is its own state that `retry` resumes, SIGTERM drains, no temp file
survives a lost worker, and a journal that cannot be written (or is deleted) is loud."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import tempfile
import time
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, wait_for
from PIL import Image
from test_faults import tmpfs

BASE = """
daemon:
  settle_seconds: {settle}
  workers: 1
  shutdown_grace: GRACE
limits:
  job_timeout: TIMEOUT
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
rules:
  - name: fast
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
    on_conflict: CONFLICT
"""
SLOW_RULE = """
  - name: slow
    pipeline: [SLOW]
    output: {root}/out/{{stem}}-slow.{{ext}}
"""
# About 6 s of encoding for a 1200x1200 noise picture: time to act while it runs.
WEBP_SLOW = "{{encode: {{format: webp, lossless: true, effort: 6, quality: 100}}}}"


def config(
    originals: str = "keep",
    *,
    conflict: str = "rename",
    slow: str | None = None,
    grace: float = 5,
    timeout: float = 60,
) -> str:
    text = (
        BASE.replace("ORIGINALS", originals)
        .replace("CONFLICT", conflict)
        .replace("GRACE", str(grace))
        .replace("TIMEOUT", str(timeout))
    )
    if slow is not None:
        text += SLOW_RULE.replace("SLOW", slow)
    return text


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, start: bool = True, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, text, **kw)
        procs.append(d)
        return d.start() if start else d

    yield make
    for d in procs:
        d.close()


def noise(path: Path, size: int = 1200, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random.Random(seed).randbytes(size * size * 3)
    Image.frombytes("RGB", (size, size), data).save(path, "PNG", compress_level=1)
    return path


def temps(*folders: Path) -> list[Path]:
    return [p for f in folders for p in files(f) if p.name.startswith(".amberpic-")]


def states(d: DaemonProc) -> list[str]:
    return [h["state"] for h in d.history()]


# --- a skipped output keeps the original ---------------------------------------------------


def test_skip_conflict_keeps_the_original_under_delete(daemon):
    d = daemon(config("delete", conflict="skip"))
    d.out.mkdir(parents=True)
    theirs = d.out / "a.png"
    theirs.write_bytes(b"another photo's output")
    src = images.jpeg(d.inbox / "a.jpg")
    original = src.read_bytes()
    wait_for(lambda: states(d) in (["done"], ["skipped"]) and d.idle(), what="the job to end")
    assert theirs.read_bytes() == b"another photo's output"
    assert src.read_bytes() == original, "the original was deleted though nothing was written"
    wait_for(lambda: "a.jpg: kept the original: a.png taken" in d.logs(), what="the reason said")
    # Control: with the name free, the same policy does delete the original.
    images.jpeg(d.inbox / "b.jpg", description="b")
    wait_for(lambda: not (d.inbox / "b.jpg").exists(), what="b.jpg to be deleted")
    assert (d.out / "b.png").exists()


# --- a failed original step is its own state; retry resumes only that step -----------------


def test_archive_full_then_retry_moves_the_original_without_duplicates(daemon, tmp_path):
    with tmpfs(tmp_path / "archive", "256k") as archive:
        filler = archive / "filler.bin"
        filler.write_bytes(b"\0" * 250_000)
        d = daemon(config("move"))
        src = noise(d.inbox / "IMG_1.png", 200)
        wait_for(lambda: "original_failed" in states(d), what="the original step to fail")
        job = d.history()[0]
        assert job["error"].startswith("IMG_1.png: outputs written; could not move the original")
        assert "No space left on device" in job["error"] and "Errno" not in job["error"]
        assert [p.name for p in files(d.out)] == ["IMG_1.png"]
        assert src.exists() and not temps(archive, d.out)
        filler.unlink()
        assert d.cli("retry").returncode == 0
        wait_for((archive / "IMG_1.png").exists, what="the original in the archive")
        wait_for(lambda: states(d) == ["done"], what="the job to be done")
        assert not src.exists()
        assert [p.name for p in files(d.out)] == ["IMG_1.png"], "retry re-ran the pipeline"
        assert not temps(archive, d.out)


def test_trash_blocked_is_original_failed_and_retry_trashes(daemon, tmp_path):
    (tmp_path / "home").mkdir()  # the trash lives under HOME
    trash = tmp_path / "data" / "Trash"
    trash.parent.mkdir(parents=True)
    trash.write_text("a file where the trash folder should be")
    d = daemon(config("trash"))
    src = images.jpeg(d.inbox / "t.jpg")
    wait_for(lambda: "original_failed" in states(d), what="the trash step to fail")
    error = d.history()[0]["error"]
    assert error.startswith("t.jpg: outputs written; could not trash the original: "), error
    assert d.status()["state"] == "error"
    trash.unlink()
    assert d.cli("retry").returncode == 0
    wait_for(lambda: not src.exists(), what="the original to be trashed")
    wait_for(lambda: states(d) == ["done"])
    assert [p.name for p in files(d.out)] == ["t.png"]
    assert [p.name for p in files(trash / "files")] == ["t.jpg"]


def test_retry_while_the_original_step_fails_again(daemon, tmp_path):
    (tmp_path / "home").mkdir()
    trash = tmp_path / "data" / "Trash"
    trash.parent.mkdir(parents=True)
    trash.write_text("blocked")
    d = daemon(config("trash"))
    images.jpeg(d.inbox / "t.jpg")
    wait_for(lambda: "original_failed" in states(d))
    for _ in range(2):
        assert d.cli("retry").returncode == 0
        wait_for(lambda: d.idle() and states(d) == ["original_failed"], what="failing again")
    assert [p.name for p in files(d.out)] == ["t.png"]
    trash.unlink()
    assert d.cli("retry").returncode == 0
    wait_for(lambda: states(d) == ["done"])
    assert [p.name for p in files(d.out)] == ["t.png"]


# --- SIGTERM drains ------------------------------------------------------------------------


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_sigterm_commits_the_job_in_flight_within_the_grace(daemon):
    d = daemon(config("move", grace=60, slow=WEBP_SLOW))
    src = noise(d.inbox / "n.png", 1000)
    wait_for(lambda: d.status()["in_flight"] == 1, what="the job to start")
    assert d.stop(signal.SIGTERM, timeout=90) == 0
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert not src.exists() and (d.root / "archive" / "n.png").exists()
    assert not temps(d.out, d.root / "archive")
    assert states(d) == ["done"]


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_sigterm_past_the_grace_leaves_no_temp_and_finishes_at_next_start(daemon):
    d = daemon(config("move", grace=0.5, slow=WEBP_SLOW))
    noise(d.inbox / "n.png", 1200)
    wait_for(lambda: (d.out / ".amberpic-1-0.png.tmp").exists(), what="the first output staged")
    assert d.stop(signal.SIGTERM, timeout=30) == 0
    assert not temps(d.out), "a cut-short job left its temp file"
    assert (d.inbox / "n.png").exists()
    d.write_config(config("move", grace=60, slow=WEBP_SLOW).format(root=d.root, settle=0.3))
    d.start()
    wait_for(lambda: states(d) == ["done"], 60, "the job finished after the restart")
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert not temps(d.out)


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_sigterm_twice_still_drains(daemon):
    d = daemon(config(grace=60, slow=WEBP_SLOW))
    noise(d.inbox / "n.png", 1000)
    wait_for(lambda: d.status()["in_flight"] == 1, what="the job to start")
    d.proc.send_signal(signal.SIGTERM)
    d.proc.send_signal(signal.SIGTERM)
    assert d.stop(signal.SIGTERM, timeout=90) == 0
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert not temps(d.out) and states(d) == ["done"]


# --- no temp file survives a lost worker ---------------------------------------------------


def _staged_then(d: DaemonProc) -> None:
    wait_for(lambda: (d.out / ".amberpic-1-0.png.tmp").exists(), what="the first output staged")


@pytest.mark.parametrize("how", ["timeout", "crash"])
def test_a_lost_worker_leaves_no_temp(daemon, how):
    d = daemon(config(slow=WEBP_SLOW, timeout=5 if how == "timeout" else 60))
    noise(d.inbox / "n.png", 1200)
    _staged_then(d)
    if how == "crash":
        for pid in d.workers():
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: "failed" in states(d), 30, "the job to fail")
    error = d.history()[0]["error"]
    assert error.startswith("n.png: worker failed: "), error
    assert not temps(d.out), "the lost worker's staged temp file is still there"


def test_an_encode_error_after_staging_leaves_no_temp(daemon):
    d = daemon(config(slow="{{encode: {{format: jpeg, max_bytes: 100}}}}"))
    noise(d.inbox / "n.png", 400)
    wait_for(lambda: "failed" in states(d), 30, "the job to fail")
    assert "encode failed" in d.history()[0]["error"]
    assert not temps(d.out) and not files(d.out)


def test_disk_full_on_the_second_output_leaves_no_temp(daemon, tmp_path):
    with tmpfs(tmp_path / "out", "700k") as out:
        d = daemon(config(slow="{{encode: png}}"))
        noise(d.inbox / "n.png", 300)  # two ~270 kB outputs; the fs has room for one and a bit
        (out / "filler").write_bytes(b"\0" * 250_000)
        wait_for(lambda: "failed" in states(d), 30, "the job to fail")
        assert "No space left" in d.history()[0]["error"]
        assert [p.name for p in files(out)] == ["filler"]


# --- the journal cannot be written, or is deleted -------------------------------------------


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_state_disk_full_is_an_error_then_heals_without_reload(daemon, tmp_path):
    with tmpfs(tmp_path / "state", "2m") as state:
        d = daemon(config())
        images.jpeg(d.inbox / "first.jpg", description="1")
        wait_for((d.out / "first.png").exists)
        wait_for(d.idle)
        filler = _fill(state)
        for i in range(5):
            images.jpeg(d.inbox / f"w{i}.jpg", description=f"w{i}")
        wait_for(lambda: d.status()["state"] == "error", 30, "status to show the journal error")
        status = d.status()
        assert status["journal"]["error"] and "journal" in status["journal"]["error"]
        assert status["queue"] > 0, "the files must wait in the queue"
        assert "could not be queued" not in d.logs() and "Traceback" not in d.logs()
        filler.unlink()
        wait_for(lambda: len(files(d.out)) == 6, 30, "the waiting files, without a reload")
        wait_for(lambda: d.status()["state"] == "idle")
        assert d.status()["journal"]["error"] is None
        assert sorted(states(d)) == ["done"] * 6


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_journal_deleted_while_running_is_loud_and_makes_no_duplicates(daemon, tmp_path, how):
    d = daemon(config())
    images.jpeg(d.inbox / "a.jpg", description="a")
    wait_for((d.out / "a.png").exists)
    wait_for(d.idle)
    state = tmp_path / "state" / "amberpic"
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (state / name).unlink(missing_ok=True)
    if how == "replaced":
        sqlite3.connect(state / "journal.db").close()
    wait_for(lambda: "journal.db was " in d.logs(), 20, "the daemon to notice")
    assert d.status()["state"] == "error"
    images.jpeg(d.inbox / "b.jpg", description="b")
    wait_for((d.out / "b.png").exists, what="work to go on")
    assert d.stop() == 0
    d.start()
    images.jpeg(d.inbox / "c.jpg", description="c")
    wait_for((d.out / "c.png").exists)
    wait_for(d.idle)
    assert sorted(p.name for p in files(d.out)) == ["a.png", "b.png", "c.png"]


def test_history_opens_the_journal_read_only(daemon, tmp_path):
    d = daemon(config(), start=False)
    state = tmp_path / "state" / "amberpic"
    state.mkdir(parents=True)
    db = state / "journal.db"
    old = sqlite3.connect(db)
    old.execute("CREATE TABLE jobs (id INTEGER)")  # an old journal: user_version 0
    old.commit()
    old.close()
    before = db.read_bytes()
    proc = d.cli("history")
    assert proc.returncode != 0 and "older" in proc.stderr
    assert db.read_bytes() == before, "history migrated the journal"
    assert not Path(f"{db}-wal").exists()
    # a real journal, read while the daemon runs
    db.unlink()
    d.start()
    images.jpeg(d.inbox / "h.jpg")
    wait_for(lambda: states(d) == ["done"])
    d.stop()
    before = db.read_bytes()
    assert [h["state"] for h in d.history()] == ["done"]
    assert db.read_bytes() == before
    shutil.rmtree(state)
    proc = d.cli("history")
    assert proc.returncode == 0 and "no history yet" in proc.stdout
    assert not state.exists(), "history created the state folder"


# --- the watchdog is fed by the dispatcher's progress, not by an idle thread ---------------


def test_a_hung_dispatcher_stops_feeding_the_watchdog(daemon, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="apw-", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / "notify"))
    sock.settimeout(0.2)

    def pings(seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                n += b"WATCHDOG=1" in sock.recv(65536)
        return n

    try:
        d = daemon(config(), start=False)
        d.env.update(
            NOTIFY_SOCKET=str(folder / "notify"),
            WATCHDOG_USEC="1000000",  # ping every 0.5 s
            AMBERPIC_TEST_CRASH_AT="hang@recorded",
        )
        d.start()
        assert pings(2.0) >= 2, "control: an idle, healthy daemon feeds the watchdog"
        images.jpeg(d.inbox / "h.jpg")
        wait_for(lambda: (d.out / ".amberpic-1-0.png.tmp").exists(), what="the job to stage")
        pings(1.5)  # the dispatcher is stuck from now on
        assert pings(3.0) == 0, "a hung dispatcher must not be reported alive"
        assert d.status()["ok"]  # the main thread and the socket still answer
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_state_disk_fills_while_a_job_runs_then_it_is_done_once(daemon, tmp_path):
    with tmpfs(tmp_path / "state", "2m") as state:
        d = daemon(config("move", slow=WEBP_SLOW))
        noise(d.inbox / "n.png", 900)
        wait_for(lambda: d.status()["in_flight"] == 1, what="the job to start")
        filler = _fill(state)
        wait_for(lambda: d.status()["journal"]["error"], 60, "the commit to find the disk full")
        assert (d.inbox / "n.png").exists() and not temps(d.out)
        filler.unlink()
        wait_for(lambda: "done" in states(d), 60, "the job done once the journal heals")
        wait_for(d.idle)
        assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
        assert [p.name for p in files(d.root / "archive")] == ["n.png"]
        assert sorted(states(d)) == ["done", "retry"]  # the first attempt, superseded
        assert not temps(d.out) and d.status()["state"] == "idle"


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_journal_deleted_while_a_job_is_in_flight(daemon, tmp_path):
    d = daemon(config("move", slow=WEBP_SLOW))
    noise(d.inbox / "n.png", 900)
    wait_for(lambda: d.status()["in_flight"] == 1, what="the job to start")
    state = tmp_path / "state" / "amberpic"
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (state / name).unlink(missing_ok=True)
    wait_for(lambda: "new journal at" in d.logs(), 90, "the daemon to start a new journal")
    wait_for(lambda: states(d) == ["done"], 90, "the file done in the new journal")
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert [p.name for p in files(d.root / "archive")] == ["n.png"]
    assert not temps(d.out)
    assert d.stop() == 0
    d.start()
    wait_for(d.idle)
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]


@pytest.mark.slow  # a slow lossless WebP encode (CPU): 40-75 s on a loaded 2-core machine
def test_sigkill_during_the_drain_then_restart_is_exactly_once(daemon):
    d = daemon(config("move", grace=60, slow=WEBP_SLOW))
    noise(d.inbox / "n.png", 1000)
    _staged_then(d)
    d.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping" in d.logs(), what="the drain to begin")
    assert d.proc.poll() is None  # still draining: the slow output is not done
    d.kill()
    assert (d.inbox / "n.png").exists()
    d.start()
    wait_for(lambda: states(d) == ["done"], 90, "the job finished after the restart")
    assert sorted(p.name for p in files(d.out)) == ["n-slow.webp", "n.png"]
    assert [p.name for p in files(d.root / "archive")] == ["n.png"]
    assert not temps(d.out, d.root / "archive")


def test_a_255_byte_name_that_cannot_be_trashed_is_original_failed_once(daemon, tmp_path):
    (tmp_path / "home").mkdir()
    d = daemon(config("trash"))
    stem = "x" * 251  # a 255-byte name: its .trashinfo name would be 265 bytes
    src = images.jpeg(d.inbox / f"{stem}.jpg")
    wait_for(lambda: d.history() and d.idle(), 30, "the job to end")
    (job,) = d.history()
    assert job["state"] == "original_failed", job
    assert "outputs written; could not trash the original: File name too long" in job["error"]
    outputs = [p.name for p in files(d.out)]
    assert src.exists() and len(outputs) == 1 and outputs[0].endswith(".png")
    assert d.cli("retry").returncode == 0
    wait_for(lambda: d.idle() and [h["state"] for h in d.history()] == ["original_failed"])
    assert [p.name for p in files(d.out)] == outputs, "retry made the output again"
    assert not temps(d.out) and src.exists()
