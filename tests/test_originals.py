import os
from pathlib import Path

import need
import pytest

from amberpicd.errors import OriginalError
from amberpicd.originals import handle_original


def original(tmp_path: Path, name: str = "a.jpg") -> tuple[Path, dict]:
    p = tmp_path / "inbox" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"photo")
    st = p.stat()
    return p, {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


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


def test_move_across_filesystems(tmp_path):
    with need.tmpfs(tmp_path / "other", "1m") as other:
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        archive = other / "archive"
        p, seen = original(tmp_path)
        got = handle_original(p, "move", archive=archive, **seen)
        assert got.read_bytes() == b"photo" and not p.exists()
        assert not any(n.startswith(".amberpic-") for n in os.listdir(archive))
