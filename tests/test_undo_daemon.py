"""Undo with the real daemon: while it runs (it must not take the restored original again),
from the tray's menu through the control socket, and after a ``kill -9`` mid-undo (the
test-only AMBERPIC_TEST_CRASH_AT hook), finished by the next ``undo`` or the next start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import images
import need
import pytest
from daemonproc import DaemonProc, files, wait_for

from amberpicd.desktop.tray.menu import Item, build_menu
from amberpicd.journal import Journal

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: move
    archive: ARCHIVE
rules:
  - name: web
    pipeline: [{{resize: {{width: 64}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
  - name: thumb
    pipeline: [{{resize: {{width: 16}}}}, {{encode: png}}]
    output: {root}/out/thumbs/{{stem}}.{{ext}}
"""


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(archive: Path | None = None) -> DaemonProc:
        text = CONFIG.replace("ARCHIVE", str(archive or tmp_path / "archive"))
        d = DaemonProc(tmp_path, text)
        procs.append(d)
        return d

    yield make
    for d in procs:
        d.close()


def states(d: DaemonProc, name: str) -> list[str]:
    return [h["state"] for h in d.history() if Path(h["source"]).name == name]


def drop_and_wait(d: DaemonProc) -> tuple[Path, bytes]:
    (d.inbox).mkdir(exist_ok=True)
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    wait_for(lambda: states(d, "IMG_1.jpg") == ["done"], 30, "the job to be done")
    assert not src.exists() and len(files(d.out)) == 2
    return src, original


def later_file_done(d: DaemonProc, name: str = "later") -> None:
    """A file dropped after the undo is processed: by then the daemon has seen (and
    decided on) the restored original's events, which came first."""
    images.jpeg(d.inbox / f"{name}.jpg", (100, 80))
    wait_for((d.out / f"{name}.webp").exists, 30, "the later file's output")
    wait_for(d.idle)


def test_undo_while_the_daemon_runs_and_the_original_is_not_taken_again(daemon):
    d = daemon().start()
    src, original = drop_and_wait(d)
    proc = d.cli("undo", str(src))
    assert proc.returncode == 0, proc.stderr
    assert "IMG_1.jpg: undone: removed IMG_1.webp, IMG_1.png" in proc.stdout
    assert src.read_bytes() == original
    later_file_done(d)
    assert src.read_bytes() == original, "the daemon took the undone original again"
    assert not (d.out / "IMG_1.webp").exists() and not (d.out / "thumbs/IMG_1.png").exists()
    assert states(d, "IMG_1.jpg") == ["undone"]
    # Nor by a rescan (reload), nor by the scan of a restart.
    assert d.cli("reload").returncode == 0
    later_file_done(d, "after-reload")
    d.stop()
    d.start()
    later_file_done(d, "after-restart")
    assert src.read_bytes() == original and states(d, "IMG_1.jpg") == ["undone"]
    assert not (d.out / "IMG_1.webp").exists()
    again = d.cli("undo", str(src))
    assert again.returncode == 0 and "nothing to undo (undone already)" in again.stdout
    # Control run: `retry PATH` takes it again, so the daemon could have.
    assert d.cli("retry", str(src)).returncode == 0
    wait_for((d.out / "IMG_1.webp").exists, 30, "the retried file's output")
    wait_for(lambda: not src.exists(), 30, "the retried original to be archived")


def test_the_trays_undo_goes_through_the_control_socket(daemon):
    d = daemon().start()
    src, original = drop_and_wait(d)
    wait_for(lambda: any(r["status"] == "done" for r in d.status()["recent"]))
    menu = build_menu(d.status())
    recent = next(i for i in menu if isinstance(i, Item) and i.text == "Recent activity")
    done = next(i for i in recent.submenu if i.text.startswith("✓ IMG_1.jpg"))
    (action,) = next(i for i in done.submenu if i.text == "Undo").actions
    reply = d.cmd(action.cmd, **action.kwargs)
    assert reply["ok"], reply
    assert [r["status"] for r in reply["reports"]] == ["undone"]
    assert src.read_bytes() == original and files(d.out) == []
    labels = [
        i.text
        for i in next(
            i for i in build_menu(d.status()) if isinstance(i, Item) and i.text == "Recent activity"
        ).submenu
    ]
    assert "↶ IMG_1.jpg: undone" in labels
    again = d.cmd(action.cmd, **action.kwargs)
    assert again["reports"][0]["error"] == "IMG_1.jpg: nothing to undo (undone already)"


def crash_undo(d: DaemonProc, src: Path, step: str) -> None:
    env = {**d.env, "AMBERPIC_TEST_CRASH_AT": step}
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(d.config), "undo", str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, f"the hook did not fire at {step}: {proc.stderr}"


def assert_undone(d: DaemonProc, src: Path, original: bytes, archive: Path) -> None:
    assert src.read_bytes() == original
    mine = [p for p in files(d.out) + files(archive) if p.stem == "IMG_1"]
    assert mine == [], "an output or the archived original is still there"
    leftovers = [p for p in files(d.root) if p.name.startswith(".amberpic-")]
    assert not leftovers


@pytest.mark.parametrize("finisher", ["undo", "daemon"])
@pytest.mark.parametrize("step", ["undo:begun", "undo:restored", "undo:removed:0"])
def test_kill_9_mid_undo_is_finished_later(daemon, tmp_path, step, finisher):
    d = daemon().start()
    src, original = drop_and_wait(d)
    d.stop()
    crash_undo(d, src, step)
    assert states(d, "IMG_1.jpg") == ["undoing"]
    if finisher == "undo":
        proc = d.cli("undo", str(src))
        assert proc.returncode == 0, proc.stderr
    else:
        d.start()
        wait_for(lambda: states(d, "IMG_1.jpg") == ["undone"], 30, "recovery to finish it")
        later_file_done(d)
    assert states(d, "IMG_1.jpg") == ["undone"]
    assert_undone(d, src, original, tmp_path / "archive")


@pytest.mark.parametrize("step", ["undo:copied", "undo:linked"])
def test_kill_9_mid_copy_back_from_another_filesystem(daemon, tmp_path, step):
    with need.tmpfs(tmp_path / "other", "8m") as other:
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        d = daemon(other / "archive").start()
        src, original = drop_and_wait(d)
        assert [p.name for p in files(other / "archive")] == ["IMG_1.jpg"]
        d.stop()
        crash_undo(d, src, step)
        d.start()
        wait_for(lambda: states(d, "IMG_1.jpg") == ["undone"], 30, "recovery to finish it")
        assert_undone(d, src, original, other / "archive")
        d.stop()


@pytest.mark.parametrize("originals", ["move", "trash"])
def test_an_original_whose_place_was_not_recorded_is_found_by_its_content(
    daemon, tmp_path, originals
):
    """A kill -9 right after the original step, before the journal heard where it went:
    recovery finishes the job without the place, and undo finds the original by its hash."""
    d = daemon()
    d.write_config(d.config.read_text().replace("originals: move", f"originals: {originals}"))
    d.env["AMBERPIC_TEST_CRASH_AT"] = "original"
    d.start()
    d.inbox.mkdir(exist_ok=True)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "IMG_1.jpg").write_bytes(b"another, older IMG_1")  # not it
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    d.proc.wait(30)
    assert d.proc.returncode == -9
    d.kill()
    d.env.pop("AMBERPIC_TEST_CRASH_AT")
    d.start()
    wait_for(lambda: states(d, "IMG_1.jpg") == ["done"], 30, "recovery to finish the job")
    d.stop()
    with Journal(tmp_path / "state" / "amberpic" / "journal.db", read_only=True) as j:
        assert j.recent()[0].original is None  # the case under test: the place not recorded
    proc = d.cli("undo", str(src))
    assert proc.returncode == 0, proc.stderr
    assert src.read_bytes() == original and files(d.out) == []
    trash = tmp_path / "data" / "Trash"
    assert files(trash / "files") == [] and files(trash / "info") == []
    assert (tmp_path / "archive" / "IMG_1.jpg").read_bytes() == b"another, older IMG_1"
