"""No temp file survives a failure path now that every temp stays until published is
recorded: the real daemon, a real folder in an output's way."""

from __future__ import annotations

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
