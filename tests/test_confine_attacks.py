"""Promise 2 under a hostile reviewer's attacks: the holes the first confinement tests left.

Each attack is deterministic: a primitive the code calls is wrapped so that the folder is
swapped at the exact moment between the walk and the use, on real files, real symlinks
and (for a second filesystem) a real tmpfs mount.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import images
import pytest

from amberpicd import batch, pipeline
from amberpicd.commit import commit
from amberpicd.config.loader import parse_config


def make_config(tmp_path: Path, inbox: Path, *, originals: str = "keep", output: str = ""):
    text = f"""
watch:
  - inbox: {inbox}
    recursive: true
    originals: {originals}
    archive: {tmp_path}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: "{output or f"{tmp_path}/out/{{stem}}.{{ext}}"}"
"""
    return parse_config(text, None, tmp_path)


def stage(config, path: Path):
    job, originals = batch.plan(config, path)
    return pipeline.run(job), originals, job.relpath


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m"):
    """A second filesystem of our own (root only: CI and this machine run as root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def swap_for_link(folder: Path, away: Path, target: Path) -> None:
    """The attacker's move: the real folder goes aside, a link to ``target`` takes its name."""
    folder.rename(away)
    folder.symlink_to(target)


# -- trash on another filesystem than the home trash ---------------------------------------


def test_trash_on_another_volume_never_resolves_the_path_again(tmp_path, trash_home, monkeypatch):
    """The inbox is on its own filesystem (a USB stick), so the home trash cannot take the
    file by rename. Between the walk of the inbox and the move into a trash, ``sub`` is
    swapped for a link to a folder outside holding a file of the same name: that file must
    not be trashed, and the original goes to the volume's own trash, by descriptor."""
    from amberpicd import originals

    with tmpfs(tmp_path / "vol") as vol:
        inbox = vol / "inbox"
        (inbox / "sub").mkdir(parents=True)
        src = images.jpeg(inbox / "sub/IMG_1.jpg", size=(32, 32))
        data = src.read_bytes()
        victim = tmp_path / "outside/sub/IMG_1.jpg"
        victim.parent.mkdir(parents=True)
        victim.write_bytes(b"not the daemon's to trash")
        config = make_config(tmp_path, inbox, originals="trash")
        result, policy, relpath = stage(config, src)
        assert result.status == "staged", result.error
        real_trash = originals.trash

        def swapping_trash(folder, name, path):
            swap_for_link(inbox / "sub", inbox / "sub-away", victim.parent)
            return real_trash(folder, name, path)

        monkeypatch.setattr(originals, "trash", swapping_trash)
        report = commit(result, policy, relpath=relpath)
        assert (inbox / "sub").is_symlink()  # the swap happened, after the walk
        assert victim.read_bytes() == b"not the daemon's to trash"
        assert report.status == "done", report.error
        assert not (inbox / "sub-away/IMG_1.jpg").exists()
        volume_trash = vol / f".Trash-{os.getuid()}"
        assert (volume_trash / "files/IMG_1.jpg").read_bytes() == data
        info = (volume_trash / "info/IMG_1.jpg.trashinfo").read_text()
        assert f"Path={inbox}/sub/IMG_1.jpg" in info  # absolute, as the specification allows
        assert not (trash_home / "files").exists() or not any((trash_home / "files").iterdir())


def test_home_trash_on_the_inbox_filesystem_is_used_even_when_home_is_elsewhere(
    tmp_path, monkeypatch
):
    """Which trash takes the file is decided by the trash folder's own filesystem, not by
    where ``~`` is: $XDG_DATA_HOME on the inbox's disk gets it by descriptor."""
    import importlib

    from send2trash import plat_other

    from amberpicd.originals import handle_original

    with tmpfs(tmp_path / "vol") as vol:
        monkeypatch.setenv("XDG_DATA_HOME", str(vol / "data"))
        importlib.reload(plat_other)
        try:
            (vol / "inbox").mkdir()
            src = images.jpeg(vol / "inbox/IMG_1.jpg", size=(16, 16))
            st = src.stat()
            assert handle_original(src, "trash", size=st.st_size, mtime_ns=st.st_mtime_ns) is None
            assert (vol / "data/Trash/files/IMG_1.jpg").is_file()
            assert not (vol / f".Trash-{os.getuid()}").exists()
        finally:
            monkeypatch.undo()
            importlib.reload(plat_other)
