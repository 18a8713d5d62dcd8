"""No temp file survives a failure path now that every temp stays until published is
recorded: the real daemon, real tmpfs (inodes used up), a real folder in an output's way,
kill -9 through the test-only crash hook (amberpicd/engine/commit.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import images
import need
import pytest
from daemonproc import DaemonProc, files, wait_for

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
    on_conflict: CONFLICT
"""


def config(originals: str = "keep", on_conflict: str = "rename") -> str:
    return CONFIG.replace("ORIGINALS", originals).replace("CONFLICT", on_conflict)


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, text, **kw)
        d.inbox.mkdir(exist_ok=True)
        procs.append(d)
        return d

    yield make
    for d in procs:
        d.close()


def temps(folder: Path) -> list[str]:
    return [p.name for p in files(folder) if p.name.startswith(".amberpic-")]


def states(d: DaemonProc) -> list[str]:
    return [h["state"] for h in d.history()]


def test_overwrite_onto_a_folder_fails_and_leaves_no_temp(daemon):
    """on_conflict: overwrite links the temp to a second temp name and renames that over
    the final name. A folder under the output's name makes the rename fail: the job fails,
    the original stays, and neither temp name stays behind."""
    d = daemon(config("delete", "overwrite"))
    (d.out / "IMG_1.png").mkdir(parents=True)  # the user's folder, under the output's name
    d.start()
    src = images.jpeg(d.inbox / "IMG_1.jpg", (64, 48))
    original = src.read_bytes()
    wait_for(lambda: states(d) == ["failed"], what="the job to fail")
    wait_for(d.idle)
    assert src.read_bytes() == original
    assert (d.out / "IMG_1.png").is_dir()
    assert temps(d.out) == [], "a temp file stayed behind"
    # Control: the same rule publishes fine over a free name.
    images.jpeg(d.inbox / "IMG_2.jpg", (64, 48), description="2")
    wait_for((d.out / "IMG_2.png").exists, what="a normal output")
    wait_for(d.idle)
    assert temps(d.out) == []


def test_recovery_that_cannot_publish_fails_and_leaves_no_temp(daemon, tmp_path):
    """A kill -9 after the journal recorded the staged temps, then the output disk is full
    (no inode left for the link) when the daemon starts again: recovery cannot publish, the
    job fails, and its temp does not stay for ever (a retry runs under a new job, whose
    sweep never looks for the old job's temps)."""
    with need.tmpfs(tmp_path / "out", "4m,nr_inodes=64") as out:
        d = daemon(config("delete"), extra_env={"AMBERPIC_TEST_CRASH_AT": "recorded"})
        d.start()
        src = images.jpeg(d.inbox / "IMG_1.jpg", (64, 48))
        original = src.read_bytes()
        d.proc.wait(30)
        assert d.proc.returncode == -9, f"the hook did not fire:\n{d.logs()}"
        d.kill()
        d.env.pop("AMBERPIC_TEST_CRASH_AT")
        assert temps(out) == [".amberpic-1-0.png.tmp"]  # staged, recorded, not published
        filler = need.fill_inodes(out)
        d.start()
        wait_for(lambda: states(d) == ["failed"], what="recovery to fail the job")
        wait_for(d.idle)
        assert src.read_bytes() == original
        assert not (out / "IMG_1.png").exists()
        assert temps(out) == [], "the temp of a job recovery failed stayed behind"
        error = d.history()[0]["error"]  # one line naming the file, never an Errno repr
        assert error.startswith("IMG_1.jpg: write failed: ") and "No space left" in error
        assert "Errno" not in error
        shutil.rmtree(filler)
        assert d.cli("retry").returncode == 0
        wait_for((out / "IMG_1.png").exists, what="the output after retry")
        wait_for(lambda: not src.exists(), what="the original deleted after retry")
        wait_for(d.idle)
        assert sorted(p.name for p in files(out)) == ["IMG_1.png"]
