import os
from pathlib import Path

from amberpicd.output.writer import discard, is_temp_name, publish, stage


def test_stage_is_invisible_until_published(tmp_path: Path):
    final = tmp_path / "out" / "a.webp"
    staged = stage(b"data", final, "rename", "t1")
    assert not final.exists()
    assert staged.temp.exists() and is_temp_name(staged.temp.name)
    assert publish(staged) == final
    # The temp stays, a second link to the output, until the caller has recorded the
    # publish and discards it: a gone temp never means "published" to crash recovery.
    assert final.read_bytes() == b"data" and os.path.samefile(staged.temp, final)
    discard(staged)
    assert final.read_bytes() == b"data" and not staged.temp.exists()


def test_rename_never_clobbers(tmp_path: Path):
    final = tmp_path / "a.webp"
    final.write_bytes(b"old")
    (tmp_path / "a-1.webp").write_bytes(b"old1")
    got = publish(stage(b"new", final, "rename", "t"))
    assert got == tmp_path / "a-2.webp"
    assert final.read_bytes() == b"old" and got.read_bytes() == b"new"


def test_overwrite_replaces_atomically(tmp_path: Path):
    final = tmp_path / "a.webp"
    final.write_bytes(b"old")
    assert publish(stage(b"new", final, "overwrite", "t")) == final
    assert final.read_bytes() == b"new"


def test_skip_keeps_existing_and_leaves_the_temp_for_the_caller(tmp_path: Path):
    final = tmp_path / "a.webp"
    final.write_bytes(b"old")
    staged = stage(b"new", final, "skip", "t")
    assert publish(staged) is None
    # The temp stays until the caller has recorded the skip (then discards it): a missing
    # temp must only ever mean "published" to crash recovery.
    assert final.read_bytes() == b"old" and staged.temp.read_bytes() == b"new"
    assert publish(staged) is None  # again, after a crash: still skipped
    discard(staged)
    assert not staged.temp.exists() and final.read_bytes() == b"old"
    assert publish(stage(b"new", tmp_path / "b.webp", "skip", "t")) == tmp_path / "b.webp"


def test_publish_again_after_crash_between_link_and_unlink(tmp_path: Path):
    final = tmp_path / "a.webp"
    staged = stage(b"new", final, "rename", "t")
    os.link(staged.temp, final)  # the crash happened right after the link
    assert publish(staged) == final  # recognised as already published, no "a-1.webp"
    discard(staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.webp"]


def test_overwrite_keeps_the_temp_until_discarded_and_is_idempotent(tmp_path: Path):
    final = tmp_path / "a.webp"
    final.write_bytes(b"old")
    staged = stage(b"new", final, "overwrite", "t")
    assert publish(staged) == final
    assert final.read_bytes() == b"new" and os.path.samefile(staged.temp, final)
    assert publish(staged) == final  # again, after a crash before the record
    discard(staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.webp"]


def test_stage_replaces_a_stale_temp_of_the_same_job(tmp_path: Path):
    final = tmp_path / "a.webp"
    first = stage(b"partial", final, "rename", "job7-0")
    second = stage(b"whole", final, "rename", "job7-0")
    assert first.temp == second.temp and second.temp.read_bytes() == b"whole"
