"""``amberpicd undo``: the journal remembers what a job did, and undo takes it back.

Real files, real SQLite, ``amberpicd process`` as the job maker (it records in the daemon's
journal exactly as the daemon does), then ``undo`` on the command line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import images
import pytest
from clirun import run_cli

from amberpicd.journal import Journal
from amberpicd.paths import state_dir

CONFIG = """
watch:
  - inbox: {root}/inbox
    originals: {originals}
    archive: {archive}
rules:
  - name: web
    pipeline: [{{resize: {{width: 64}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
"""
TWO_RULES = (
    CONFIG
    + """  - name: thumb
    pipeline: [{{resize: {{width: 16}}}}, {{encode: png}}]
    output: {root}/out/thumbs/{{stem}}.{{ext}}
"""
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup(tmp_path: Path, originals: str, text: str = CONFIG, archive: Path | None = None):
    cfg = tmp_path / "config.yaml"
    archive = archive or tmp_path / "archive"
    cfg.write_text(text.format(root=tmp_path, originals=originals, archive=archive))
    (tmp_path / "inbox").mkdir(exist_ok=True)
    src = images.jpeg(tmp_path / "inbox" / "IMG_1.jpg", (200, 150))
    return cfg, src, src.read_bytes()


def process(cfg: Path, src: Path, capsys) -> None:
    code, _, err = run_cli("-c", str(cfg), "process", str(src), capsys=capsys)
    assert code == 0, err


def journal() -> Journal:
    return Journal(state_dir() / "journal.db")


def undo(cfg: Path, *args: str, capsys) -> tuple[int, str, str]:
    return run_cli("-c", str(cfg), "undo", *args, capsys=capsys)


def files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- 1. what the journal remembers ----------------------------------------------------------


@pytest.mark.parametrize("originals", ["keep", "move", "delete"])
def test_the_journal_keeps_each_outputs_hash_and_where_the_original_went(
    tmp_path, capsys, originals
):
    cfg, src, _ = setup(tmp_path, originals, TWO_RULES)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "IMG_1.jpg").write_bytes(b"an older one")  # the name is taken
    process(cfg, src, capsys)
    with journal() as j:
        (job,) = j.recent()
    out = tmp_path / "out"
    assert list(job.outputs) == [out / "IMG_1.webp", out / "thumbs" / "IMG_1.png"]
    assert list(job.output_hashes) == [sha(p) for p in job.outputs]
    if originals == "keep":
        assert job.original == {"fate": "kept", "path": str(src)}
    elif originals == "move":  # the name actually used after the conflict
        assert job.original == {"fate": "moved", "path": str(tmp_path / "archive/IMG_1-1.jpg")}
    else:
        assert job.original == {"fate": "deleted"}


def test_the_journal_keeps_the_trash_name_actually_used(tmp_path, capsys, trash_home):
    cfg, src, _ = setup(tmp_path, "trash")
    (trash_home / "files").mkdir(parents=True)
    (trash_home / "files" / "IMG_1.jpg").write_bytes(b"trashed earlier")
    process(cfg, src, capsys)
    with journal() as j:
        (job,) = j.recent()
    assert job.original == {"fate": "trashed", "trash": "home", "name": "IMG_1 1.jpg"}
    assert (trash_home / "info" / "IMG_1 1.jpg.trashinfo").exists()
