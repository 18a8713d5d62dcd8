"""The real daemon as a subprocess, real inotify, real SQLite, real worker processes."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, wait_for
from PIL import Image

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 2
watch:
  - inbox: {root}/inbox
    recursive: true
rules:
  - name: web
    pipeline: [auto_orient, {{resize: {{width: 64, height: 64}}}}, {{encode: webp}}]
    output: {root}/out/{{relpath}}/{{stem}}.{{ext}}
"""


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(config: str = CONFIG, start: bool = True, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, config, **kw)
        procs.append(d)
        return d.start() if start else d

    yield make
    for d in procs:
        d.close()


def no_temp_files(*folders: Path) -> bool:
    return not [p for f in folders for p in files(f) if p.name.startswith(".amberpic-")]


def test_write_and_close_gives_one_output(daemon):
    d = daemon()
    src = images.jpeg(d.inbox / "a.jpg", (640, 480), orientation=6, gps=True)
    out = d.out / "a.webp"
    wait_for(out.exists, what="the output")
    with Image.open(out) as im:
        assert im.size == (64, 48) and not im.getexif()
    assert src.exists()  # originals: keep
    wait_for(d.idle)
    assert [h["state"] for h in d.history()] == ["done"]
    assert d.stop() == 0


def test_rename_from_part_is_taken_once_under_its_final_name(daemon):
    d = daemon()
    part = d.inbox / "b.jpg.part"
    images.jpeg(part)
    wait_for(lambda: d.status()["queue"] == 0)
    assert files(d.out) == []  # the .part file is never taken
    part.rename(d.inbox / "b.jpg")
    wait_for((d.out / "b.webp").exists)
    wait_for(d.idle)
    assert [Path(h["source"]).name for h in d.history()] == ["b.jpg"]


def test_slow_writer_pausing_mid_file_is_not_taken_early(daemon):
    d = daemon(settle=0.3)
    data = images.encoded(images.upright(800, 600), "PNG")
    target = d.inbox / "slow.png"
    with open(target, "wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        # Pause for several settle periods with the file still open.
        assert not threading.Event().wait(1.2)
        assert files(d.out) == []
        f.write(data[half:])
    wait_for((d.out / "slow.webp").exists)
    wait_for(d.idle)
    hist = d.history()
    assert [h["state"] for h in hist] == ["done"], hist


def test_catch_up_after_a_stop(daemon):
    d = daemon()
    assert d.stop() == 0
    for i in range(5):
        images.jpeg(d.inbox / f"late{i}.jpg", description=str(i))
    d.start()
    wait_for(lambda: len(files(d.out)) == 5, what="five outputs")
    wait_for(d.idle)
    d.stop()
    d.start()  # a second start processes nothing again
    wait_for(d.idle)
    assert len(d.history()) == 5 and len(files(d.out)) == 5


def test_identical_content_is_processed_once(daemon):
    d = daemon()
    images.jpeg(d.inbox / "one.jpg")
    wait_for((d.out / "one.webp").exists)
    wait_for(d.idle)
    images.jpeg(d.inbox / "copy of one.jpg")
    wait_for(lambda: "already processed" in d.logs(), what="the duplicate to be noticed")
    assert files(d.out) == [d.out / "one.webp"]


def test_outputs_inside_the_inbox_are_never_reingested(daemon):
    # `check` refuses an output folder inside a recursive inbox; a template can still route
    # outputs into one through a field (here the rule's name), and those are never taken.
    cfg = CONFIG.replace("name: web", "name: inbox").replace(
        "{root}/out/{{relpath}}", "{root}/{{rule}}/out/{{relpath}}"
    )
    d = daemon(cfg)
    images.jpeg(d.inbox / "c.jpg")
    wait_for((d.inbox / "out" / "c.webp").exists)
    wait_for(d.idle)
    # Give the watcher a chance to see the output; it must not become a job.
    wait_for(lambda: d.status()["queue"] == 0)
    assert [Path(h["source"]).name for h in d.history()] == ["c.jpg"]


def test_pause_and_resume_through_the_socket(daemon):
    d = daemon()
    assert d.cmd("pause")["ok"]
    assert d.status()["state"] == "paused"
    images.jpeg(d.inbox / "p.jpg")
    wait_for(lambda: d.status()["queue"] == 1, what="the file to be queued while paused")
    assert files(d.out) == []
    # The toggle persists across a restart.
    assert d.stop() == 0
    d.start()
    assert d.status()["paused"] is True
    assert d.cli("resume").returncode == 0
    wait_for((d.out / "p.webp").exists)


def test_bad_config_reload_keeps_the_old_one(daemon):
    d = daemon()
    good = d.config.read_text()
    d.write_config(good.replace("encode: webp", "encode: {format: webp, qualty: 3}"))
    wait_for(lambda: d.status()["config"]["error"], what="the reload error")
    assert "qualty" in d.status()["config"]["error"]
    assert d.cli("reload").returncode == 1
    images.jpeg(d.inbox / "still.jpg")
    wait_for((d.out / "still.webp").exists)  # the old config still works
    d.write_config(good.replace("width: 64, height: 64", "width: 32, height: 32"))
    wait_for(lambda: d.status()["config"]["error"] is None, what="a good reload")
    images.jpeg(d.inbox / "new.jpg")
    wait_for((d.out / "new.webp").exists)
    with Image.open(d.out / "new.webp") as im:
        assert im.size == (32, 24)


def test_sighup_reloads(daemon):
    d = daemon()
    generation = d.status()["config"]["generation"]
    d.write_config(d.config.read_text().replace("width: 64, height: 64", "width: 16, height: 16"))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.status()["config"]["generation"] > generation, what="the reload")
    images.jpeg(d.inbox / "h.jpg")
    wait_for((d.out / "h.webp").exists)
    with Image.open(d.out / "h.webp") as im:
        assert im.size == (16, 12)


def test_a_worker_killed_mid_job_fails_that_file_only(daemon):
    d = daemon()
    images.png(d.inbox / "big.png", (6000, 4000), mode="RGB")
    wait_for(lambda: d.status()["in_flight"] == 1, what="the job to start")
    workers = wait_for(d.workers, what="the worker process")  # started on demand
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    wait_for(d.idle)
    failed = [h for h in d.history() if h["state"] == "failed"]
    assert failed and "SIGKILL" in failed[0]["error"], d.history()
    assert failed[0]["error"].startswith("big.png: worker failed: ")
    images.jpeg(d.inbox / "after.jpg")
    wait_for((d.out / "after.webp").exists)
    assert d.status()["failures_unseen"] >= 1
    assert d.status()["state"] in ("error", "busy")


def test_retry_after_fixing_the_cause(daemon, tmp_path):
    cfg = CONFIG.replace("{root}/out/{{relpath}}", "{root}/blocked/{{relpath}}")
    (tmp_path / "blocked").write_text("a file where the output folder should be")
    d = daemon(cfg)
    images.jpeg(d.inbox / "r.jpg")
    wait_for(lambda: any(h["state"] == "failed" for h in d.history()), what="the failure")
    assert "r.jpg" in d.history()[0]["error"]
    (tmp_path / "blocked").unlink()
    assert d.cli("retry").returncode == 0
    wait_for((tmp_path / "blocked" / "r.webp").exists)


def test_second_instance_refuses(daemon, tmp_path):
    d = daemon()
    second = d.cli("run", timeout=30)
    assert second.returncode == 1
    assert "already running" in second.stderr


def test_sigterm_exits_zero_and_removes_the_socket(daemon):
    d = daemon()
    assert d.stop(signal.SIGTERM) == 0
    assert not d.socket.exists()


def test_status_cli_without_a_daemon(daemon):
    d = daemon(start=False)
    proc = d.cli("status")
    assert proc.returncode == 1 and "not running" in proc.stderr


def test_burst_of_files_each_processed_once(daemon):
    d = daemon()
    n = 300
    for i in range(n):
        images.jpeg(d.inbox / f"burst{i:04}.jpg", (64, 48), description=str(i))
    wait_for(lambda: len(files(d.out)) == n, timeout=120, what=f"{n} outputs")
    wait_for(d.idle)
    hist = d.history()
    assert len(hist) == n and {h["state"] for h in hist} == {"done"}
    assert no_temp_files(d.out, d.inbox)


@pytest.mark.slow
def test_burst_of_1000_files(daemon):
    d = daemon()
    for i in range(1000):
        images.jpeg(d.inbox / f"k{i:04}.jpg", (64, 48), description=str(i))
    wait_for(lambda: len(files(d.out)) == 1000, timeout=300, what="1000 outputs")
    wait_for(d.idle)
    assert len(d.history()) == 1000


def test_kill_9_during_a_burst_then_restart_processes_each_file_once(daemon):
    d = daemon()
    n = 120
    for i in range(n):
        images.jpeg(d.inbox / f"k{i:03}.jpg", (320, 240), description=str(i))
    wait_for(lambda: len(files(d.out)) >= 20, timeout=60, what="the burst to be under way")
    d.kill()
    d.start()
    wait_for(lambda: len(files(d.out)) >= n, timeout=120, what="all outputs")
    wait_for(d.idle)
    names = sorted(p.name for p in files(d.out))
    assert names == sorted(f"k{i:03}.webp" for i in range(n)), "duplicates or missing outputs"
    assert no_temp_files(d.out, d.inbox)
    done = [h for h in d.history() if h["state"] == "done"]
    assert sorted(Path(h["source"]).name for h in done) == sorted(f"k{i:03}.jpg" for i in range(n))
    for p in files(d.out):
        with Image.open(p) as im:
            im.load()  # whole, decodable
