"""Promise 2 under a hostile reviewer's attacks on outputs and inputs: the holes the first
confinement tests left (tests/test_confine.py), and the attacks that already fail, kept.

Each attack is deterministic: a primitive the code calls is wrapped so that the folder is
swapped at the exact moment between the walk and the use, on real files and real symlinks.
"""

from __future__ import annotations

import os
from pathlib import Path

import images
import pytest
from confineattack import make_config, stage, swap_for_link

from amberpicd.config.loader import parse_config
from amberpicd.engine import batch, pipeline
from amberpicd.engine.commit import commit

# -- the read of an input ------------------------------------------------------------------


def test_an_input_is_read_through_its_inbox_folder_not_a_swapped_link(tmp_path, monkeypatch):
    """A recursive inbox's sub-folder is swapped, after the file settled and just before
    the worker reads it, for a link to a private folder holding an image of the same name:
    the private picture must not be read (its pixels would land in the output folder, where
    the attacker reads them)."""
    from amberpicd.imaging import decode

    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    src = images.jpeg(inbox / "sub/IMG_1.jpg", size=(32, 32))
    private = tmp_path / "private"
    private.mkdir()
    images.jpeg(private / "IMG_1.jpg", size=(48, 40))  # a different picture
    config = make_config(tmp_path, inbox, originals="delete")
    job, _ = batch.plan(config, src)
    real_open = os.open

    def swapping_open(path, flags, *args, **kwargs):
        # The first open of the read, whatever it is: the swap precedes it.
        if str(path).startswith(str(inbox)) and not (inbox / "sub").is_symlink():
            swap_for_link(inbox / "sub", inbox / "sub-away", private)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(decode.os, "open", swapping_open)
    result = pipeline.run(job)
    monkeypatch.undo()
    assert (inbox / "sub").is_symlink()  # the swap happened, just before the read
    assert result.status == "failed"
    assert result.error == "IMG_1.jpg: inbox/sub is a symbolic link; refusing to read through it"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    # Control: the real folder back, the same job reads the inbox's own picture.
    (inbox / "sub").unlink()
    (inbox / "sub-away").rename(inbox / "sub")
    result = pipeline.run(job)
    assert result.status == "staged", result.error
    assert [(o.width, o.height) for o in result.outputs] == [(32, 32)]


# -- configured folders nested in one another ----------------------------------------------


def test_an_archive_inside_an_output_root_cannot_be_swapped_by_its_writers(tmp_path):
    """``output: P/{rule}/…`` makes P an output root its writers may fill; the archive
    ``P/Originals`` is then a folder *below* a configured folder, yet it is resolved by the
    kernel: swapped for a link, the originals go wherever the link points."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    text = f"""
watch:
  - inbox: {inbox}
    originals: move
    archive: {tmp_path}/P/Originals
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: "{tmp_path}/P/{{rule}}/{{stem}}.{{ext}}"
"""
    config = parse_config(text, None, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "P").mkdir()
    (tmp_path / "P/Originals").symlink_to(outside)  # done by a writer of the output root P
    src = images.jpeg(inbox / "IMG_1.jpg", size=(16, 16))
    result, policy, relpath = stage(config, src)
    report = commit(result, policy, relpath=relpath)
    assert list(outside.iterdir()) == []
    assert report.status == "failed" and "P/Originals is a symbolic link" in report.error
    assert src.is_file()


def test_an_output_root_inside_another_cannot_be_swapped_by_its_writers(tmp_path):
    """Two rules, ``P/{stem}`` and ``P/thumbs/{stem}`` (an everyday config): the thumbs
    root lies below the web root, so a writer of P swapping ``thumbs`` for a link must not
    send thumbnails outside. Control: with a real folder both outputs are written."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    text = f"""
watch:
  - inbox: {inbox}
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: "{tmp_path}/P/{{stem}}.{{ext}}"
  - name: thumb
    pipeline: [{{resize: {{width: 8}}}}, {{encode: png}}]
    output: "{tmp_path}/P/thumbs/{{stem}}.{{ext}}"
"""
    config = parse_config(text, None, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "P").mkdir()
    (tmp_path / "P/thumbs").symlink_to(outside)  # done by a writer of the web root P
    src = images.jpeg(inbox / "IMG_1.jpg", size=(16, 16))
    result, policy, relpath = stage(config, src)
    assert result.status == "failed" and "P/thumbs is a symbolic link" in result.error
    assert list(outside.iterdir()) == []
    (tmp_path / "P/thumbs").unlink()  # control: a real folder
    result, policy, relpath = stage(config, src)
    report = commit(result, policy, relpath=relpath)
    assert report.status == "done", report.error
    assert (tmp_path / "P/IMG_1.png").is_file() and (tmp_path / "P/thumbs/IMG_1.png").is_file()


# -- outputs: planted and swapped temp names -----------------------------------------------


@pytest.mark.parametrize("plant", ["hard link", "symlink", "fifo"])
def test_a_temp_name_planted_in_advance_is_replaced_not_written_through(
    tmp_path, plant, monkeypatch
):
    """The job's temp name is predictable (the daemon's job id): planted as a hard link or
    a symlink to an outside file, or a FIFO, it is unlinked and made afresh."""
    import dataclasses

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    victim = tmp_path / "outside/victim.png"
    victim.parent.mkdir()
    victim.write_bytes(b"unrelated, must survive")
    config = make_config(tmp_path, inbox)
    job, _ = batch.plan(config, images.jpeg(inbox / "IMG_1.jpg", size=(16, 16)))
    job = dataclasses.replace(job, tag="7")
    temp = tmp_path / "out/.amberpic-7-0.png.tmp"
    temp.parent.mkdir()
    {"hard link": lambda: os.link(victim, temp), "symlink": lambda: temp.symlink_to(victim)}.get(
        plant, lambda: os.mkfifo(temp)
    )()
    result = pipeline.run(job)
    assert result.status == "staged", result.error
    assert victim.read_bytes() == b"unrelated, must survive"
    assert temp.is_file() and not temp.is_symlink() and temp.stat().st_nlink == 1
    assert temp.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("on_conflict", ["rename", "skip"])
def test_a_temp_swapped_for_a_symlink_before_publishing_is_not_published(
    tmp_path, outside_file, on_conflict
):
    """Between stage and publish a writer of the output folder puts a symlink to an outside
    file in place of the temp: publishing it would give the output's name to a link out,
    and the original would then be deleted for an output that is not ours."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = make_config(tmp_path, inbox, originals="delete", on_conflict=on_conflict)
    src = images.jpeg(inbox / "IMG_1.jpg", size=(16, 16))
    result, policy, relpath = stage(config, src)
    (out,) = result.outputs
    out.staged.temp.unlink()
    out.staged.temp.symlink_to(outside_file)
    report = commit(result, policy, relpath=relpath)
    assert report.status == "failed" and "replaced" in report.error
    assert (
        not (tmp_path / "out/IMG_1.png").exists() and not (tmp_path / "out/IMG_1.png").is_symlink()
    )
    assert src.is_file()
    assert outside_file.read_bytes() == b"unrelated, must survive"


@pytest.fixture
def outside_file(tmp_path: Path) -> Path:
    path = tmp_path / "outside/IMG_1.png"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"unrelated, must survive")
    return path


@pytest.mark.parametrize("on_conflict", ["rename", "overwrite"])
def test_a_fifo_or_socket_at_the_final_name_is_never_opened(tmp_path, on_conflict):
    import socket

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    os.mkfifo(tmp_path / "out/A.png")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "out/B.png"))
        config = make_config(tmp_path, inbox, on_conflict=on_conflict)
        for name in ("A", "B"):
            src = images.jpeg(inbox / f"{name}.jpg", size=(16, 16))
            report = commit(*stage(config, src)[:2])
            assert report.status == "done", report.error
            (final,) = report.outputs
            assert final.is_file() and final.read_bytes()[:4] == b"\x89PNG"


def test_an_archive_inside_the_inbox_cannot_be_swapped_by_the_inboxs_writers(tmp_path):
    """``archive: Inbox/done``: whoever may drop files in the inbox may also replace
    ``done`` with a link; the archive is walked down from the inbox root, so it is refused."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    text = f"""
watch:
  - inbox: {inbox}
    originals: move
    archive: {inbox}/done
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: "{tmp_path}/out/{{stem}}.{{ext}}"
"""
    config = parse_config(text, None, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (inbox / "done").symlink_to(outside)
    src = images.jpeg(inbox / "IMG_1.jpg", size=(16, 16))
    report = commit(*stage(config, src)[:2])
    assert list(outside.iterdir()) == []
    assert report.error == (
        "IMG_1.jpg: outputs written; could not move the original: inbox/done is a symbolic "
        "link; refusing to move through it"
    )
    assert src.is_file()
    # Control: a real folder there, and the original is archived in it.
    (inbox / "done").unlink()
    report = commit(*stage(config, src)[:2])
    assert report.status == "done", report.error
    assert report.original == inbox / "done/IMG_1.jpg" and report.original.is_file()
