"""fs.copy.unlink_if_same: a name is removed only while it is the file checked. Real files,
real renames over the name (as another program would make them) in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

from amberpicd.fs.confined import open_dir
from amberpicd.fs.copy import unlink_if_same

ASIDE = ".amberpic-deleting-test.tmp"


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_the_file_checked_is_removed(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"checked")
    st = os.lstat(tmp_path / "a.jpg")
    with open_dir(tmp_path) as folder:
        assert unlink_if_same(folder, "a.jpg", st, ASIDE) is True
    assert names(tmp_path) == []  # nothing left aside either


def test_a_file_renamed_over_the_name_stays(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"checked")
    st = os.lstat(tmp_path / "a.jpg")
    (tmp_path / "new").write_bytes(b"a new drop")
    os.rename(tmp_path / "new", tmp_path / "a.jpg")  # same name, another inode, after the check
    with open_dir(tmp_path) as folder:
        assert unlink_if_same(folder, "a.jpg", st, ASIDE) is False
    assert names(tmp_path) == ["a.jpg"]
    assert (tmp_path / "a.jpg").read_bytes() == b"a new drop"


def test_a_name_taken_while_aside_is_not_clobbered(tmp_path: Path):
    """The other file is put back beside a name taken meanwhile (give_back), never over it."""
    (tmp_path / "a.jpg").write_bytes(b"other")
    st = os.lstat(tmp_path / "a.jpg")
    os.rename(tmp_path / "a.jpg", tmp_path / "b")
    (tmp_path / "c").write_bytes(b"replacement")
    os.rename(tmp_path / "c", tmp_path / "a.jpg")
    with open_dir(tmp_path) as folder:

        class Racing:  # a third file takes the name between the move aside and the put back
            def __getattr__(self, attr):
                real = getattr(folder, attr)
                if attr != "lstat":
                    return real

                def lstat(name):
                    found = real(name)
                    (tmp_path / "a.jpg").write_bytes(b"third")
                    return found

                return lstat

        assert unlink_if_same(Racing(), "a.jpg", st, ASIDE) is False
    assert names(tmp_path) == ["a-1.jpg", "a.jpg", "b"]
    assert (tmp_path / "a.jpg").read_bytes() == b"third"
    assert (tmp_path / "a-1.jpg").read_bytes() == b"replacement"


def test_a_name_gone_is_no_error(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    st = os.lstat(tmp_path / "a.jpg")
    os.unlink(tmp_path / "a.jpg")
    with open_dir(tmp_path) as folder:
        assert unlink_if_same(folder, "a.jpg", st, ASIDE) is False
    assert names(tmp_path) == []
