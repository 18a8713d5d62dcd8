"""Confinement with the real daemon as a subprocess: real inotify, real symlinks, real
worker processes. A symlinked folder below an output or archive root is refused, the
file outside is untouched, and the user reads one line naming the file and the folder."""

from __future__ import annotations

import os
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, wait_for

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    recursive: true
    originals: ORIGINALS
    archive: {root}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: OUTPUT
    on_conflict: overwrite
"""


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(originals: str, output: str) -> DaemonProc:
        text = CONFIG.replace("ORIGINALS", originals).replace("OUTPUT", output)
        d = DaemonProc(tmp_path, text)
        d.inbox.mkdir(parents=True, exist_ok=True)
        procs.append(d)
        return d.start()

    yield make
    for d in procs:
        d.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "IMG_1.png").write_bytes(b"unrelated, must survive")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in files(folder)}


def failed(d: DaemonProc, state: str = "failed") -> list[dict]:
    return [h for h in d.history() if h["state"] == state]


def test_output_folder_that_is_a_symlink_is_refused(daemon, tmp_path, outside):
    (tmp_path / "out/Thumbs").mkdir(parents=True)
    (tmp_path / "out/Thumbs/2024").symlink_to(outside)
    before = snapshot(outside)
    d = daemon("delete", "{root}/out/Thumbs/{{date:%Y}}/{{stem}}.{{ext}}")
    src = images.jpeg(d.inbox / "IMG_1.jpg", size=(64, 48))
    wait_for(lambda: failed(d), what="the refusal")
    line = "IMG_1.jpg: write failed: Thumbs/2024 is a symbolic link; refusing to write through it"
    assert [h["error"] for h in failed(d)] == [line]
    wait_for(lambda: line in d.logs(), what="the log line")
    assert sum(line in row for row in d.logs().splitlines()) == 1
    assert snapshot(outside) == before  # the unrelated file was not overwritten
    assert src.is_file()  # nothing was written, so the original stays (originals: delete)
    assert d.status()["ok"]
    # Control: the same daemon writes once the folder is a real one again.
    (tmp_path / "out/Thumbs/2024").unlink()
    assert d.cli("retry").returncode == 0
    wait_for((tmp_path / "out/Thumbs/2024/IMG_1.png").is_file, what="the output after retry")
    wait_for(lambda: not src.exists(), what="the original deleted after the output")
    assert snapshot(outside) == before


def test_archive_sub_folder_that_is_a_symlink_is_refused(daemon, tmp_path, outside):
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive/trip").symlink_to(outside)
    (tmp_path / "inbox/trip").mkdir(parents=True)
    before = snapshot(outside)
    d = daemon("move", "{root}/out/{{relpath}}/{{stem}}.{{ext}}")
    src = images.jpeg(d.inbox / "trip/IMG_1.jpg", size=(64, 48))
    original = src.read_bytes()
    wait_for(lambda: failed(d, "original_failed"), what="the refusal")
    line = (
        "IMG_1.jpg: outputs written; could not move the original: archive/trip is a symbolic"
        " link; refusing to move through it"
    )
    assert [h["error"] for h in failed(d, "original_failed")] == [line]
    assert sum(line in row for row in d.logs().splitlines()) == 1
    assert snapshot(outside) == before  # the original did not go outside the archive
    assert src.read_bytes() == original  # it stays in the inbox, unchanged
    assert (tmp_path / "out/trip/IMG_1.png").is_file()  # the output itself is fine
    assert not any(n.startswith(".amberpic-") for n in os.listdir(outside))
    assert d.status()["ok"]
