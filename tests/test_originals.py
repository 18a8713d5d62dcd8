import os
from pathlib import Path

import need
import pytest

from amberpicd.engine.originals import handle_original
from amberpicd.errors import OriginalError
from amberpicd.fs.identity import FileIdentity


def original(tmp_path: Path, name: str = "a.jpg") -> tuple[Path, dict]:
    p = tmp_path / "inbox" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"photo")
    return p, {"identity": FileIdentity.of(os.lstat(p))}


def test_keep(tmp_path):
    p, seen = original(tmp_path)
    assert handle_original(p, "keep", **seen) == p and p.exists()


def test_move_keeps_relpath_and_never_clobbers(tmp_path):
    p, seen = original(tmp_path)
    archive = tmp_path / "archive"
    (archive / "trip").mkdir(parents=True)
    (archive / "trip" / "a.jpg").write_bytes(b"older")
    got = handle_original(p, "move", archive=archive, relpath="trip", **seen)
    assert got == archive / "trip" / "a-1.jpg" and got.read_bytes() == b"photo"
    assert (archive / "trip" / "a.jpg").read_bytes() == b"older"
    assert not p.exists()


def test_delete(tmp_path):
    p, seen = original(tmp_path)
    assert handle_original(p, "delete", **seen) is None and not p.exists()


def test_trash_goes_to_the_freedesktop_trash(tmp_path, trash_home):
    p, seen = original(tmp_path)
    assert handle_original(p, "trash", **seen) is None
    assert not p.exists()
    trashed = list((trash_home / "files").iterdir())
    assert [t.read_bytes() for t in trashed] == [b"photo"]


def test_changed_original_is_left_in_place(tmp_path):
    p, seen = original(tmp_path)
    p.write_bytes(b"edited meanwhile")
    with pytest.raises(OriginalError, match="changed while being processed"):
        handle_original(p, "delete", **seen)
    assert p.read_bytes() == b"edited meanwhile"


def test_file_renamed_over_with_same_size_and_mtime_is_left_in_place(tmp_path):
    p, seen = original(tmp_path)
    old = os.lstat(p)
    other = p.with_name("other.jpg")
    other.write_bytes(b"PHOTO")  # same size
    os.utime(other, ns=(old.st_atime_ns, old.st_mtime_ns))  # mtime put back, as cp -p does
    os.replace(other, p)
    assert (os.lstat(p).st_size, os.lstat(p).st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    with pytest.raises(OriginalError, match="changed while being processed"):
        handle_original(p, "delete", **seen)
    assert p.read_bytes() == b"PHOTO"


def test_rewritten_in_place_with_mtime_put_back_is_left_in_place(tmp_path):
    p, seen = original(tmp_path)
    old = os.lstat(p)
    with open(p, "r+b") as f:
        f.write(b"PHOTO")
    os.utime(p, ns=(old.st_atime_ns, old.st_mtime_ns))  # exiftool -P, touch -r
    with pytest.raises(OriginalError, match="changed while being processed"):
        handle_original(p, "delete", **seen)
    assert p.read_bytes() == b"PHOTO"


def test_move_across_filesystems(tmp_path):
    with need.tmpfs(tmp_path / "other", "1m") as other:
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        archive = other / "archive"
        p, seen = original(tmp_path)
        got = handle_original(p, "move", archive=archive, **seen)
        assert got.read_bytes() == b"photo" and not p.exists()
        assert not any(n.startswith(".amberpic-") for n in os.listdir(archive))


def test_same_inode_with_only_its_metadata_changed_is_compared_by_content(tmp_path):
    import hashlib
    from dataclasses import replace

    p, seen = original(tmp_path)
    identity = replace(seen["identity"], content_hash=hashlib.sha256(b"photo").hexdigest())
    os.link(p, tmp_path / "hard link")  # ctime changes, the bytes do not
    assert not identity.matches(os.lstat(p))
    assert handle_original(p, "delete", identity=identity) is None and not p.exists()
    q, seen = original(tmp_path, "b.jpg")
    identity = replace(seen["identity"], content_hash=hashlib.sha256(b"photo").hexdigest())
    st = os.lstat(q)
    with open(q, "r+b") as f:
        f.write(b"PHOTO")  # same inode, same size, mtime put back: the bytes tell
    os.utime(q, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(OriginalError, match="changed while being processed"):
        handle_original(q, "delete", identity=identity)
    assert q.read_bytes() == b"PHOTO"


def test_the_same_bytes_renamed_over_it_may_be_handled(tmp_path):
    import hashlib
    from dataclasses import replace

    p, seen = original(tmp_path)
    identity = replace(seen["identity"], content_hash=hashlib.sha256(b"photo").hexdigest())
    again = tmp_path / "again"
    again.write_bytes(b"photo")  # a sync tool writing the same file anew
    os.replace(again, p)
    assert not identity.matches(os.lstat(p))
    assert handle_original(p, "delete", identity=identity) is None and not p.exists()


def _replaced_right_after_the_check(monkeypatch, p: Path, new: bytes) -> None:
    """The race a sync tool or a second `cp` wins: the check that the original is the file
    processed passes, then another file is renamed over its name before the delete."""
    import amberpicd.engine.originals as originals

    real = originals.unchanged

    def check_then_replace(folder, name, st, identity):
        ok = real(folder, name, st, identity)
        other = p.with_name(".incoming")
        other.write_bytes(new)
        os.replace(other, p)
        return ok

    monkeypatch.setattr(originals, "unchanged", check_then_replace)


def test_delete_never_removes_a_file_renamed_over_the_original_after_the_check(
    tmp_path, monkeypatch
):
    p, seen = original(tmp_path)
    _replaced_right_after_the_check(monkeypatch, p, b"a new photo, never processed")
    with pytest.raises(OriginalError, match="changed"):
        handle_original(p, "delete", **seen)
    assert p.read_bytes() == b"a new photo, never processed"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.jpg"]  # nothing aside is left


def test_move_never_removes_a_file_renamed_over_the_original_after_the_check(tmp_path, monkeypatch):
    p, seen = original(tmp_path)
    archive = tmp_path / "archive"
    _replaced_right_after_the_check(monkeypatch, p, b"a new photo, never processed")
    handle_original(p, "move", archive=archive, **seen)  # what the archive gets: see below
    assert p.read_bytes() == b"a new photo, never processed"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.jpg"]


def test_a_delete_cut_short_after_moving_the_original_aside_is_finished(tmp_path):
    import hashlib
    from dataclasses import replace

    from amberpicd.engine.originals import aside_path

    p, seen = original(tmp_path)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()  # as a worker's identity carries it
    seen = {"identity": replace(seen["identity"], content_hash=digest)}
    os.rename(p, aside_path(p))  # kill -9 between the rename aside and the unlink
    assert handle_original(p, "delete", **seen) is None
    assert list(p.parent.iterdir()) == []


def test_a_file_left_aside_that_is_not_the_one_processed_is_put_back(tmp_path):
    from amberpicd.engine.originals import aside_path

    p, seen = original(tmp_path)
    p.write_bytes(b"other bytes")  # not what was processed
    os.rename(p, aside_path(p))
    with pytest.raises(OriginalError, match="changed"):
        handle_original(p, "delete", **seen)
    assert p.read_bytes() == b"other bytes" and sorted(p.parent.iterdir()) == [p]


def test_move_across_filesystems_of_a_file_rewritten_during_the_copy_keeps_it(
    tmp_path, monkeypatch
):
    """The copy to another disk takes a while; an editor saving in place meanwhile (same
    inode) makes the copy a mix of both versions. The original must then stay, unremoved,
    and no torn copy be published into the archive."""
    import amberpicd.fs.copy as copy

    real = copy.copy_xattrs

    def write_during_copy(fd_in, fd_out):
        with open(p, "r+b") as f:  # the same inode, rewritten
            f.write(b"PHOTO, edited")
        real(fd_in, fd_out)

    monkeypatch.setattr(copy, "copy_xattrs", write_during_copy)
    with need.tmpfs(tmp_path / "other", "1m") as other:
        archive = other / "archive"
        p, seen = original(tmp_path)
        with pytest.raises(OriginalError, match="changed"):
            handle_original(p, "move", archive=archive, **seen)
        assert p.read_bytes() == b"PHOTO, edited"
        assert [f for f in archive.rglob("*") if f.is_file()] == []


def test_trash_never_takes_a_file_renamed_over_the_original_after_the_check(
    tmp_path, monkeypatch, trash_home
):
    p, seen = original(tmp_path)
    _replaced_right_after_the_check(monkeypatch, p, b"a new photo, never processed")
    with pytest.raises(OriginalError, match="changed"):
        handle_original(p, "trash", **seen)
    assert p.read_bytes() == b"a new photo, never processed"
    assert [f for f in trash_home.rglob("*") if f.is_file()] == []
