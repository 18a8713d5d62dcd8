"""Exactly once at every step of a job's life: the real daemon SIGKILLs itself at a named point
(the test-only AMBERPIC_TEST_CRASH_AT hook in amberpicd/commit.py), then a restart must leave
each output once and whole, no temp file, and the original handled once."""

from __future__ import annotations

from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, wait_for
from PIL import Image

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
  - name: thumb
    pipeline: [{{resize: {{width: 32}}}}, {{encode: webp}}]
    output: {root}/out/thumbs/{{stem}}.{{ext}}
"""
# In the order a job lives them: worker staged → journal knows the temps → each output
# renamed into place → all published recorded → original handled → (done).
STEPS = ["staged", "recorded", "published:0", "published:1", "all_published", "original"]


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, text, **kw)
        procs.append(d)
        return d

    yield make
    for d in procs:
        d.close()


def everything(root: Path) -> list[Path]:
    return [p for p in files(root) if "state" not in p.parts[len(root.parts) :]]


@pytest.mark.parametrize("originals", ["keep", "move", "delete"])
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_restart_is_exactly_once(daemon, tmp_path, step, originals):
    d = daemon(CONFIG.replace("ORIGINALS", originals), extra_env={"AMBERPIC_TEST_CRASH_AT": step})
    d.start()
    src = images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    d.proc.wait(30)
    assert d.proc.returncode == -9, f"the hook did not fire at {step}:\n{d.logs()}"
    d.kill()  # its workers too
    d.env.pop("AMBERPIC_TEST_CRASH_AT")
    d.start()
    wait_for(lambda: [h["state"] for h in d.history()] == ["done"], 30, "the job to be done")
    wait_for(d.idle)
    archive = tmp_path / "archive"
    assert sorted(p.relative_to(d.out).as_posix() for p in files(d.out)) == [
        "IMG_1.png",
        "thumbs/IMG_1.webp",
    ], "an output is missing or doubled"
    for p in files(d.out):
        with Image.open(p) as im:
            im.load()  # whole
    assert not [p for p in everything(tmp_path) if p.name.startswith(".amberpic-")]
    if originals == "keep":
        assert src.read_bytes() == original and not files(archive)
    elif originals == "move":
        assert not src.exists()
        assert [p.name for p in files(archive)] == ["IMG_1.jpg"]
        assert (archive / "IMG_1.jpg").read_bytes() == original
    else:
        assert not src.exists() and not files(archive)
    # A later file is processed normally: the daemon is healthy after the recovery.
    images.jpeg(d.inbox / "later.jpg", description="later")
    wait_for((d.out / "later.png").exists)


def test_crash_hook_is_off_without_the_variable(daemon):
    d = daemon(CONFIG.replace("ORIGINALS", "keep"))  # control run for the test above
    d.start()
    images.jpeg(d.inbox / "IMG_1.jpg", (200, 150))
    wait_for(lambda: [h["state"] for h in d.history()] == ["done"], 30)
    assert d.proc.poll() is None
