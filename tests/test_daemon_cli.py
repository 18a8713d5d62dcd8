"""The daemon's command line as a newcomer reads it (issue 14): which config runs, files that
are no images, an empty file, failures and retries, history."""

from __future__ import annotations

import re
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, wait_for

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
  notify: "off"
  tray: false
watch:
  - inbox: {root}/inbox
rules:
  - name: small
    pipeline: [{{resize: {{width: 16}}}}, {{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


@pytest.fixture
def daemon(tmp_path: Path):
    d = DaemonProc(tmp_path, CONFIG)
    d.inbox.mkdir()
    d.start()
    yield d
    d.close()


def finished(d: DaemonProc, n: int):
    def check():
        s = d.status()
        return s if len(s["recent"]) >= n and s["queue"] == 0 and s["in_flight"] == 0 else None

    return wait_for(check, 30, f"{n} files to finish")


def test_start_up_log_and_status_name_the_config(daemon: DaemonProc):
    start = [line for line in daemon.logs().splitlines() if " watching " in line]
    assert len(start) == 1 and start[0].endswith(f"; config: {daemon.config}")
    out = daemon.cli("status")
    assert out.returncode == 0
    assert f"  config: {daemon.config}" in out.stdout.splitlines()


def test_non_images_are_not_failures_and_an_empty_file_shows_as_waiting(daemon: DaemonProc):
    d = daemon
    (d.inbox / "README.txt").write_text("what this folder is for\n")
    (d.inbox / "empty.jpg").touch()
    images.jpeg(d.inbox / "good.jpg", (64, 48))
    status = finished(d, 2)
    by_name = {Path(r["source"]).name: r for r in status["recent"]}
    assert by_name["README.txt"]["status"] == "skipped"
    assert by_name["README.txt"]["error"] == "README.txt: not an image"
    assert by_name["good.jpg"]["status"] == "done"
    # Not a failure: no red icon, no ERROR line, but said once at INFO.
    assert status["failures_unseen"] == 0 and status["state"] == "idle"
    lines = d.logs().splitlines()
    assert [line for line in lines if "README.txt" in line and "INFO" in line]
    assert not [line for line in lines if " ERROR " in line]
    # The empty file is not work in progress, but status shows it waiting.
    assert status["empty"] == [str(d.inbox / "empty.jpg")]
    out = d.cli("status").stdout
    assert "  1 empty (0-byte) file waiting for content: empty.jpg" in out.splitlines()
    assert "  skipped: README.txt: not an image" in out.splitlines()
    # Written at last, it is taken and no longer waits.
    images.jpeg(d.inbox / "empty.jpg", (32, 24))  # not good.jpg's bytes
    wait_for((d.out / "empty.png").exists, 30, "the once-empty file's output")
    wait_for(lambda: d.status()["empty"] == [], 10, "the empty list to clear")


def test_history_and_retry_read_plainly(daemon: DaemonProc):
    d = daemon
    none = d.cli("history", "--failed")
    assert none.returncode == 0 and none.stdout == "no failed jobs\n"
    (d.inbox / "notes.jpg").write_text("not an image at all")
    (d.inbox / "todo.jpg").write_text("nor is this")
    finished(d, 2)
    out = d.cli("history", "--failed").stdout.splitlines()
    assert len(out) == 2
    for line in out:
        # "2026-12-01 10:00:00 failed    notes.jpg: not an image (unrecognised content)"
        assert re.fullmatch(
            r"\S+ \S+ failed +(notes|todo)\.jpg: not an image \(unrecognised content\)", line
        ), line

    assert d.cli("retry").stdout == "retry: ok: 2 files queued\n"
    wait_for(lambda: _retried(d), 30, "the retries")
    (inbox_line,) = [line for line in d.cli("status").stdout.splitlines() if "inbox " in line]
    # The same two files, failed again: not "2 failed, 2 retry".
    assert inbox_line.endswith(": 2 failed"), inbox_line


def _retried(d: DaemonProc) -> bool:
    s = d.status()
    (inbox,) = s["inboxes"]
    return (
        inbox["counts"].get("failed") == 2
        and inbox["counts"].get("retry") == 2
        and (s["queue"] == 0 and s["in_flight"] == 0)
    )
