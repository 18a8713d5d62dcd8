"""Promise 2 under a hostile reviewer's attacks on originals: trash moves (on other
filesystems, real tmpfs and bind mounts) and archive moves (a name re-taken mid-move, the
cross-device copy raced). Deterministic: a primitive is wrapped to strike at the moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import images
import pytest
from confineattack import make_config, stage, swap_for_link, tmpfs

from amberpicd.engine.commit import commit
from amberpicd.fs.identity import FileIdentity

# -- trash on another filesystem than the home trash ---------------------------------------


def test_trash_on_another_volume_never_resolves_the_path_again(tmp_path, trash_home, monkeypatch):
    """The inbox is on its own filesystem (a USB stick), so the home trash cannot take the
    file by rename. Between the walk of the inbox and the move into a trash, ``sub`` is
    swapped for a link to a folder outside holding a file of the same name: that file must
    not be trashed, and the original goes to the volume's own trash, by descriptor."""
    from amberpicd.engine import originals

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

        def swapping_trash(folder, name, path, **kw):
            swap_for_link(inbox / "sub", inbox / "sub-away", victim.parent)
            return real_trash(folder, name, path, **kw)

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
    from amberpicd.engine.originals import handle_original

    with tmpfs(tmp_path / "vol") as vol:
        monkeypatch.setenv("XDG_DATA_HOME", str(vol / "data"))
        (vol / "inbox").mkdir()
        src = images.jpeg(vol / "inbox/IMG_1.jpg", size=(16, 16))
        st = src.stat()
        assert handle_original(src, "trash", identity=FileIdentity.of(st)) is None
        assert (vol / "data/Trash/files/IMG_1.jpg").is_file()
        assert not (vol / f".Trash-{os.getuid()}").exists()


def test_a_trash_files_folder_that_is_a_symlink_is_refused(tmp_path, trash_home):
    from amberpicd.engine.originals import handle_original
    from amberpicd.errors import OriginalError

    outside = tmp_path / "outside"
    outside.mkdir()
    trash_home.mkdir(parents=True)
    (trash_home / "files").symlink_to(outside)
    (tmp_path / "inbox").mkdir()
    src = images.jpeg(tmp_path / "inbox/IMG_1.jpg", size=(16, 16))
    st = src.stat()
    with pytest.raises(OriginalError, match="Trash/files is a symbolic link"):
        handle_original(src, "trash", identity=FileIdentity.of(st))
    assert src.is_file() and list(outside.iterdir()) == []


def test_a_bind_mount_of_the_home_trash_disk_gets_its_own_volume_trash(tmp_path, trash_home):
    """One disk, two mounts: the home trash cannot take the file by rename (EXDEV) although
    the devices match, so the trash at the top of the inbox's own mount does."""
    from amberpicd.engine.originals import handle_original

    (tmp_path / "disk/inbox").mkdir(parents=True)
    inbox_mount = tmp_path / "mnt"
    inbox_mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    proc = subprocess.run(["mount", "--bind", str(tmp_path / "disk"), str(inbox_mount)])
    if proc.returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        src = images.jpeg(inbox_mount / "inbox/IMG_1.jpg", size=(16, 16))
        st = src.stat()
        assert st.st_dev == os.stat(tmp_path).st_dev  # the same disk
        assert handle_original(src, "trash", identity=FileIdentity.of(st)) is None
        assert (inbox_mount / f".Trash-{os.getuid()}/files/IMG_1.jpg").is_file()
        assert not any((trash_home / "files").iterdir())
    finally:
        subprocess.run(["umount", "-l", str(inbox_mount)], check=False)


# -- originals: the name is re-taken while the move is under way ---------------------------


@pytest.mark.parametrize("cross_device", [False, True])
def test_a_new_file_at_the_originals_name_mid_move_is_not_deleted(
    tmp_path, monkeypatch, cross_device
):
    """Between the original's link (or copy) into the archive and its unlink from the
    inbox, a new file takes its name (a re-sync, a second download): that new file has not
    been processed and must stay."""
    import errno

    from amberpicd.engine import originals
    from amberpicd.engine.originals import handle_original

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = images.jpeg(inbox / "IMG_1.jpg", size=(16, 16))
    data, st = src.read_bytes(), src.stat()
    real_place = originals.place
    calls = []

    def place_then_retake(s, name, dst, final, *args, **kwargs):
        if cross_device and not calls:
            calls.append(name)
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        placed = real_place(s, name, dst, final, *args, **kwargs)
        if not (inbox / "IMG_1.jpg.new").exists():
            (inbox / "IMG_1.jpg.new").write_bytes(b"a new file, not yet processed")
            (inbox / "IMG_1.jpg.new").rename(inbox / "IMG_1.jpg")
        return placed

    monkeypatch.setattr(originals, "place", place_then_retake)
    moved = handle_original(src, "move", archive=tmp_path / "archive", identity=FileIdentity.of(st))
    assert moved == tmp_path / "archive/IMG_1.jpg"
    assert moved.read_bytes() == data
    assert src.read_bytes() == b"a new file, not yet processed"


# -- originals: the archive copy across filesystems ----------------------------------------


def test_cross_device_moves_into_one_archive_folder_do_not_share_a_temp(tmp_path, monkeypatch):
    """Two originals with one suffix copied into the same archive folder at once (the
    daemon and ``amberpicd process``): each copy has its own temp name."""
    from amberpicd.engine.originals import handle_original

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    a = images.jpeg(inbox / "A.jpg", size=(16, 16))
    b = images.jpeg(inbox / "B.jpg", size=(24, 24))
    data = {p: (p.read_bytes(), p.stat()) for p in (a, b)}
    with tmpfs(tmp_path / "archive") as archive:
        real_sendfile = os.sendfile

        def interleaved(out_fd, in_fd, offset, count):
            if monkeypatch_state.pop("first", False):  # A's copy is under way: B's runs
                bst = data[b][1]
                handle_original(b, "move", archive=archive, identity=FileIdentity.of(bst))
            return real_sendfile(out_fd, in_fd, offset, count)

        monkeypatch_state = {"first": True}
        monkeypatch.setattr(os, "sendfile", interleaved)
        ast = data[a][1]
        moved = handle_original(a, "move", archive=archive, identity=FileIdentity.of(ast))
        monkeypatch.undo()
        assert moved == archive / "A.jpg"
        assert (archive / "A.jpg").read_bytes() == data[a][0]
        assert (archive / "B.jpg").read_bytes() == data[b][0]
        assert not a.exists() and not b.exists()
        assert not [n for n in os.listdir(archive) if n.startswith(".amberpic-")]


def test_a_cross_device_archive_copy_swapped_before_publishing_keeps_the_original(
    tmp_path, monkeypatch
):
    """A writer of the archive replaces the durable copy's temp with a file of its own
    before it gets the original's name: the original must not leave the inbox for it."""
    from amberpicd.engine.originals import handle_original
    from amberpicd.errors import OriginalError

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = images.jpeg(inbox / "IMG_1.jpg", size=(16, 16))
    data, st = src.read_bytes(), src.stat()
    with tmpfs(tmp_path / "archive") as archive:
        real_utime = os.utime

        def swap_temp(target, *args, **kwargs):
            real_utime(target, *args, **kwargs)
            (temp,) = [n for n in os.listdir(archive) if n.startswith(".amberpic-")]
            os.unlink(archive / temp)
            (archive / temp).write_bytes(b"the attacker's bytes")

        monkeypatch.setattr(os, "utime", swap_temp)
        with pytest.raises(OriginalError, match="replaced"):
            handle_original(src, "move", archive=archive, identity=FileIdentity.of(st))
        monkeypatch.undo()
        assert src.read_bytes() == data
        assert not (archive / "IMG_1.jpg").exists()


def test_an_archive_folder_moved_out_during_a_cross_device_copy_does_not_take_the_original(
    tmp_path, monkeypatch
):
    """The copy into another filesystem takes as long as the file is big: meanwhile an
    archive writer moves the archive's sub-folder out of the archive (same disk). The
    original must not be published into it, nor leave the inbox."""
    from amberpicd.engine.originals import handle_original
    from amberpicd.errors import OriginalError

    (tmp_path / "inbox/trip").mkdir(parents=True)
    src = images.jpeg(tmp_path / "inbox/trip/IMG_1.jpg", size=(16, 16))
    data, st = src.read_bytes(), src.stat()
    with tmpfs(tmp_path / "vol") as vol:
        (vol / "outside").mkdir()
        real_utime = os.utime

        def move_folder_out(target, *args, **kwargs):
            real_utime(target, *args, **kwargs)
            os.rename(vol / "archive/trip", vol / "outside/trip")

        monkeypatch.setattr(os, "utime", move_folder_out)
        with pytest.raises(OriginalError, match="moved out of the archive"):
            handle_original(
                src,
                "move",
                archive=vol / "archive",
                relpath="trip",
                identity=FileIdentity.of(st),
            )
        monkeypatch.undo()
        assert src.read_bytes() == data
        assert list((vol / "outside/trip").iterdir()) == []


def test_trashinfo_names_the_absolute_path_percent_encoded():
    """The specification's Path key: the absolute path, bytes outside the URL-safe set
    percent-encoded (a Latin-1 byte, a space, a percent sign), and a local DeletionDate."""
    from datetime import datetime

    from amberpicd.fs.trash import info_for

    name = os.fsdecode(b"/tmp/caf\xe9 x%.jpg")
    assert info_for(Path(name), datetime(2026, 1, 2, 3, 4, 5)) == (
        "[Trash Info]\nPath=/tmp/caf%E9%20x%25.jpg\nDeletionDate=2026-01-02T03:04:05\n"
    )


def test_trashing_never_loads_gio():
    """GIO (PyGObject) and libvips' bundled GLib in one process break each other; the
    trash code must not import send2trash, whose package import loads GIO."""
    code = (
        "import sys; from amberpicd.engine.originals import handle_original;"
        " import amberpicd.fs.trash; print('gi' in sys.modules, 'send2trash' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
