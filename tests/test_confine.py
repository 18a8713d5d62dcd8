"""Promise 2, confinement: nothing is written, moved or deleted outside the folders the
config names, whatever symlinks or races the filesystem holds.

Engine level and deterministic: the real pipeline and commit run in this process, on real
files and real symlinks; a folder is swapped for a symlink at a precise moment (between
stage and publish, or while a job runs) by doing it between the two calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import images
import pytest

from amberpicd.config.loader import parse_config
from amberpicd.engine import batch, pipeline
from amberpicd.engine.commit import Report, commit
from amberpicd.output.template import fixed_root
from amberpicd.output.writer import discard

LINK_OUT = "is a symbolic link; refusing to write through it"


def make_config(
    tmp_path: Path,
    output: str,
    *,
    on_conflict: str = "rename",
    originals: str = "keep",
    recursive: bool = False,
):
    text = f"""
watch:
  - inbox: {tmp_path}/inbox
    recursive: {str(recursive).lower()}
    originals: {originals}
    archive: {tmp_path}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: "{output}"
    on_conflict: {on_conflict}
"""
    return parse_config(text, None, tmp_path)


def stage(config, path: Path) -> tuple[pipeline.FileResult, batch.OriginalsPolicy, str]:
    job, originals = batch.plan(config, path)
    return pipeline.run(job), originals, job.relpath


def process(config, path: Path) -> Report:
    result, originals, relpath = stage(config, path)
    return commit(result, originals, relpath=relpath)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (not following links) and its bytes."""
    found = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            p = Path(dirpath, name)
            found[str(p.relative_to(folder))] = p.read_bytes() if not p.is_symlink() else b"->"
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder no config names, holding an unrelated file the attacks aim at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "IMG_1.png").write_bytes(b"unrelated, must survive")
    return folder


def drop(tmp_path: Path, rel: str = "IMG_1.jpg") -> Path:
    path = tmp_path / "inbox" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return images.jpeg(path, size=(64, 48))


# -- outputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("on_conflict", ["rename", "overwrite", "skip"])
def test_template_folder_that_is_a_symlink_is_refused(tmp_path, outside, on_conflict):
    config = make_config(
        tmp_path, f"{tmp_path}/out/Thumbs/{{date:%Y}}/{{stem}}.{{ext}}", on_conflict=on_conflict
    )
    (tmp_path / "out/Thumbs").mkdir(parents=True)
    (tmp_path / "out/Thumbs/2024").symlink_to(outside)
    before = snapshot(outside)
    src = drop(tmp_path)
    report = process(config, src)
    assert report.status == "failed"
    assert report.error == f"IMG_1.jpg: write failed: Thumbs/2024 {LINK_OUT}"
    assert snapshot(outside) == before
    assert src.exists()


def test_output_sub_folder_from_relpath_that_is_a_symlink_is_refused(tmp_path, outside):
    config = make_config(tmp_path, f"{tmp_path}/out/{{relpath}}/{{stem}}.{{ext}}", recursive=True)
    (tmp_path / "out/trip").mkdir(parents=True)
    (tmp_path / "out/trip/day1").symlink_to(outside)
    before = snapshot(outside)
    report = process(config, drop(tmp_path, "trip/day1/IMG_1.jpg"))
    assert report.error == f"IMG_1.jpg: write failed: out/trip/day1 {LINK_OUT}"
    assert snapshot(outside) == before


def test_a_configured_root_reached_through_a_symlink_is_used(tmp_path):
    # The user's own ~/Pictures -> /data/Pictures: the configured root may be a link.
    real = tmp_path / "data/Pictures"
    real.mkdir(parents=True)
    (tmp_path / "Pictures").symlink_to(real)
    config = make_config(tmp_path, f"{tmp_path}/Pictures/Web/{{stem}}.{{ext}}")
    report = process(config, drop(tmp_path))
    assert report.status == "done", report.error
    assert report.outputs == [tmp_path / "Pictures/Web/IMG_1.png"]
    assert (real / "Web/IMG_1.png").is_file()


def test_folder_swapped_for_a_symlink_between_stage_and_publish(tmp_path, outside):
    config = make_config(
        tmp_path, f"{tmp_path}/out/{{date:%Y}}/{{stem}}.{{ext}}", on_conflict="overwrite"
    )
    result, originals, relpath = stage(config, drop(tmp_path))
    assert result.status == "staged", result.error
    year = tmp_path / "out/2024"
    year.rename(tmp_path / "moved-away")
    year.symlink_to(outside)
    before = snapshot(outside)
    report = commit(result, originals, relpath=relpath)
    assert report.status == "failed"
    assert report.error == f"IMG_1.jpg: write failed: out/2024: {LINK_OUT}"
    assert snapshot(outside) == before


def test_final_name_that_is_a_symlink_is_never_written_through(tmp_path, outside):
    victim = outside / "IMG_1.png"
    for on_conflict in ("overwrite", "rename"):
        config = make_config(tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", on_conflict=on_conflict)
        (tmp_path / "out").mkdir(exist_ok=True)
        link = tmp_path / "out/IMG_1.png"
        link.unlink(missing_ok=True)
        link.symlink_to(victim)
        report = process(config, drop(tmp_path))
        assert report.status == "done", report.error
        assert victim.read_bytes() == b"unrelated, must survive"
        (name,) = report.outputs
        assert name.is_file() and not name.is_symlink()


def test_a_symlink_named_like_our_temp_does_not_pass_for_a_published_output(tmp_path):
    """A link at the final name pointing at the staged temp must not be taken for the
    output published before a crash (the temp would be removed, the output lost)."""
    config = make_config(tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}")
    result, originals, relpath = stage(config, drop(tmp_path))
    (out,) = result.outputs
    (tmp_path / "out/IMG_1.png").symlink_to(out.staged.temp)
    report = commit(result, originals, relpath=relpath)
    assert report.outputs == [tmp_path / "out/IMG_1-1.png"]
    assert (tmp_path / "out/IMG_1-1.png").read_bytes()[:4] == b"\x89PNG"


def test_dot_components_in_the_fixed_root_are_normalised(tmp_path):
    config = make_config(tmp_path, "./out/./{stem}.{ext}")
    assert fixed_root(config.rules[0].output) == tmp_path / "out"
    report = process(config, drop(tmp_path))
    assert report.status == "done", report.error
    assert report.outputs == [tmp_path / "out/IMG_1.png"]


def test_new_output_folders_are_fsynced_into_their_parents(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    config = make_config(tmp_path, f"{tmp_path}/out/a/{{date:%Y}}/{{stem}}.{{ext}}")
    report = process(config, drop(tmp_path))
    assert report.status == "done", report.error
    for parent in (tmp_path, tmp_path / "out", tmp_path / "out/a"):  # each got a new entry
        assert parent.stat().st_ino in synced, parent


# -- originals ----------------------------------------------------------------------------


def test_archive_sub_folder_that_is_a_symlink_is_refused(tmp_path, outside):
    config = make_config(
        tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="move", recursive=True
    )
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive/trip").symlink_to(outside)
    before = snapshot(outside)
    src = drop(tmp_path, "trip/IMG_1.jpg")
    report = process(config, src)
    assert report.status == "failed"
    assert report.error == (
        "IMG_1.jpg: outputs written; could not move the original: "
        f"archive/trip {LINK_OUT.replace('write', 'move')}"
    )
    assert snapshot(outside) == before
    assert src.is_file()


def test_archive_name_that_is_a_symlink_to_the_original_is_not_taken_for_it(tmp_path):
    """archive/x.jpg -> inbox/x.jpg must not look like "moved before a crash": the
    original would be unlinked and only a dangling link left."""
    config = make_config(tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="move")
    src = drop(tmp_path)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive/IMG_1.jpg").symlink_to(src)
    data = src.read_bytes()
    report = process(config, src)
    assert report.status == "done", report.error
    assert report.original == tmp_path / "archive/IMG_1-1.jpg"
    assert report.original.read_bytes() == data


def test_recursive_delete_through_a_sub_folder_swapped_for_a_symlink(tmp_path, outside):
    """The issue's reproducer: the sub-folder is moved outside and a symlink put in its
    place while the job runs; the same file (same inode, size, mtime) is now outside."""
    config = make_config(
        tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="delete", recursive=True
    )
    src = drop(tmp_path, "sub/IMG_1.jpg")
    result, originals, relpath = stage(config, src)
    assert result.status == "staged", result.error
    (tmp_path / "inbox/sub").rename(outside / "sub")
    (tmp_path / "inbox/sub").symlink_to(outside / "sub")
    report = commit(result, originals, relpath=relpath)
    assert report.status == "failed"
    assert report.error == (
        "IMG_1.jpg: outputs written; could not delete the original: "
        f"inbox/sub {LINK_OUT.replace('write', 'delete')}"
    )
    assert (outside / "sub/IMG_1.jpg").is_file()


def test_recursive_move_through_a_sub_folder_swapped_for_a_symlink(tmp_path, outside):
    config = make_config(
        tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="move", recursive=True
    )
    src = drop(tmp_path, "sub/IMG_1.jpg")
    result, originals, relpath = stage(config, src)
    (tmp_path / "inbox/sub").rename(outside / "sub")
    (tmp_path / "inbox/sub").symlink_to(outside / "sub")
    report = commit(result, originals, relpath=relpath)
    assert report.status == "failed"
    assert "inbox/sub is a symbolic link" in report.error
    assert (outside / "sub/IMG_1.jpg").is_file()
    assert not (tmp_path / "archive").exists() or not any((tmp_path / "archive").rglob("*.jpg"))


def test_an_original_replaced_by_a_symlink_is_not_deleted_or_followed(tmp_path, outside):
    config = make_config(tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="delete")
    src = drop(tmp_path)
    result, originals, relpath = stage(config, src)
    target = outside / "IMG_1.jpg"
    src.rename(target)
    src.symlink_to(target)
    report = commit(result, originals, relpath=relpath)
    assert report.status == "failed" and "changed while being processed" in report.error
    assert target.is_file() and src.is_symlink()


def test_delete_and_move_still_work_through_a_symlinked_inbox_root(tmp_path):
    real = tmp_path / "real-inbox"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "inbox").symlink_to(real)
    for policy in ("delete", "move"):
        config = make_config(
            tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals=policy, recursive=True
        )
        src = images.jpeg(tmp_path / "inbox/sub" / f"{policy}.jpg", size=(32, 32))
        report = process(config, src)
        assert report.status == "done", report.error
        assert not (real / "sub" / f"{policy}.jpg").exists()
    assert (tmp_path / "archive/sub/move.jpg").is_file()


def test_recursive_trash_through_a_sub_folder_swapped_for_a_symlink(tmp_path, outside, trash_home):
    config = make_config(
        tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="trash", recursive=True
    )
    src = drop(tmp_path, "sub/IMG_1.jpg")
    result, originals, relpath = stage(config, src)
    (tmp_path / "inbox/sub").rename(outside / "sub")
    (tmp_path / "inbox/sub").symlink_to(outside / "sub")
    report = commit(result, originals, relpath=relpath)
    assert report.status == "failed"
    assert report.error == (
        "IMG_1.jpg: outputs written; could not trash the original: "
        f"inbox/sub {LINK_OUT.replace('write', 'move')}"
    )
    assert (outside / "sub/IMG_1.jpg").is_file()
    assert not (trash_home / "files").exists() or not list((trash_home / "files").iterdir())


def test_trash_through_descriptors_writes_the_trashinfo_and_never_clobbers(tmp_path, trash_home):
    config = make_config(
        tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", originals="trash", recursive=True
    )
    (trash_home / "files").mkdir(parents=True)
    (trash_home / "files/IMG_1.jpg").write_bytes(b"trashed earlier")
    src = drop(tmp_path, "sub/IMG_1.jpg")
    data = src.read_bytes()
    report = process(config, src)
    assert report.status == "done", report.error
    assert not src.exists()
    assert (trash_home / "files/IMG_1.jpg").read_bytes() == b"trashed earlier"
    assert (trash_home / "files/IMG_1 1.jpg").read_bytes() == data
    info = (trash_home / "info/IMG_1 1.jpg.trashinfo").read_text()
    assert f"Path={src}" in info.replace("%20", " ") and "DeletionDate=" in info


# -- crash recovery -----------------------------------------------------------------------


def test_sweep_temps_never_follows_a_symlinked_folder(tmp_path, outside):
    from amberpicd.daemon.recovery import sweep_temps

    real = tmp_path / "data/out"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "out").symlink_to(real)  # the configured root may be a link
    (real / "sub/.amberpic-7-0.png.tmp").write_bytes(b"ours")
    (real / ".amberpic-8-0.png.tmp").write_bytes(b"another job's")
    (outside / ".amberpic-7-0.png.tmp").write_bytes(b"not below the root")
    (real / "sub/link").symlink_to(outside)
    assert sweep_temps({tmp_path / "out"}, "7") == 1
    assert not (real / "sub/.amberpic-7-0.png.tmp").exists()
    assert (real / ".amberpic-8-0.png.tmp").exists()
    assert (outside / ".amberpic-7-0.png.tmp").read_bytes() == b"not below the root"


class FakeJournal:
    """The two journal calls recovery's publish step makes (no journal API coupling)."""

    def __init__(self, outs):
        self.outs, self.marked = outs, []

    def staged_outputs(self, job_id):
        return self.outs

    def mark_published(self, job_id, n, path):
        self.marked.append(path)


def test_recovery_publishes_through_the_confined_folder(tmp_path, outside):
    from types import SimpleNamespace

    from amberpicd.daemon.recovery import _publish_remaining
    from amberpicd.journal import StagedOutput as JournalStaged

    config = make_config(
        tmp_path, f"{tmp_path}/out/{{date:%Y}}/{{stem}}.{{ext}}", on_conflict="overwrite"
    )
    roots = {fixed_root(config.rules[0].output)}
    result, _, _ = stage(config, drop(tmp_path))
    (out,) = result.outputs
    journal = FakeJournal([JournalStaged(out.staged.temp, out.final, "overwrite")])
    year = tmp_path / "out/2024"
    year.rename(tmp_path / "moved-away")
    year.symlink_to(outside)
    before = snapshot(outside)
    with pytest.raises(OSError, match=f"out/2024 {LINK_OUT}"):
        _publish_remaining(journal, SimpleNamespace(id=1), roots)
    assert snapshot(outside) == before
    # Control: with the real folder back, the same call publishes it.
    year.unlink()
    (tmp_path / "moved-away").rename(year)
    assert _publish_remaining(journal, SimpleNamespace(id=1), roots) == [out.final]
    # The temp stays, a second link to the output, until the caller has recorded the
    # publish (then recover() sweeps it): a gone temp never passes for published.
    assert out.final.is_file() and os.path.samefile(out.staged.temp, out.final)
    discard(out.staged)
    assert out.final.is_file() and not out.staged.temp.exists()


# -- a hostile user's other tries ---------------------------------------------------------


def test_dry_run_reports_the_symlinked_folder_and_writes_nothing(tmp_path, outside):
    config = make_config(tmp_path, f"{tmp_path}/out/new/{{date:%Y}}/{{stem}}.{{ext}}")
    job, _ = batch.plan(config, drop(tmp_path), dry_run=True)
    assert pipeline.run(job).status == "staged"  # nothing refused, nothing made
    assert not (tmp_path / "out").exists()
    (tmp_path / "out/new").mkdir(parents=True)
    (tmp_path / "out/new/2024").symlink_to(outside)
    before = snapshot(outside)
    result = pipeline.run(job)
    assert result.error == f"IMG_1.jpg: write failed: new/2024 {LINK_OUT}"
    assert snapshot(outside) == before


def test_overwrite_of_a_hard_link_replaces_the_name_not_the_outside_file(tmp_path, outside):
    config = make_config(tmp_path, f"{tmp_path}/out/{{stem}}.{{ext}}", on_conflict="overwrite")
    (tmp_path / "out").mkdir()
    os.link(outside / "IMG_1.png", tmp_path / "out/IMG_1.png")
    report = process(config, drop(tmp_path))
    assert report.status == "done", report.error
    assert (outside / "IMG_1.png").read_bytes() == b"unrelated, must survive"
    assert (tmp_path / "out/IMG_1.png").read_bytes()[:4] == b"\x89PNG"


def test_a_relpath_with_dot_dot_cannot_leave_the_archive(tmp_path):
    from amberpicd.engine.originals import handle_original
    from amberpicd.errors import OriginalError
    from amberpicd.fs.identity import FileIdentity

    src = drop(tmp_path)
    st = os.lstat(src)
    with pytest.raises(OriginalError, match=r"archive/\.\./escape leaves its root folder"):
        handle_original(
            src,
            "move",
            archive=tmp_path / "archive",
            relpath="../escape",
            identity=FileIdentity.of(st),
        )
    assert src.is_file() and not (tmp_path / "escape").exists()


def test_a_folder_renamed_between_stage_and_publish_publishes_nothing_outside(tmp_path, outside):
    """The staged folder is moved out of the root and a real folder made in its place:
    publish walks the root again and finds no temp there, so it fails; nothing appears
    in the moved folder under a final name, nor in the new one."""
    config = make_config(tmp_path, f"{tmp_path}/out/{{date:%Y}}/{{stem}}.{{ext}}")
    result, originals, relpath = stage(config, drop(tmp_path))
    (tmp_path / "out/2024").rename(outside / "2024")
    (tmp_path / "out/2024").mkdir()
    report = commit(result, originals, relpath=relpath)
    assert report.status == "failed" and report.error.startswith("IMG_1.jpg: write failed")
    assert not (outside / "2024/IMG_1.png").exists()
    assert list((tmp_path / "out/2024").iterdir()) == []


def test_a_folder_swapped_for_a_symlink_right_after_we_made_it(tmp_path, outside, monkeypatch):
    """The race inside the walk: mkdirat succeeds, then the new folder is replaced by a
    link before it is opened. The open does not follow it."""
    real_mkdir = os.mkdir

    def mkdir(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        if name == "2024":
            os.rename(name, "raced-away", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.symlink(outside, name, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)
    config = make_config(tmp_path, f"{tmp_path}/out/{{date:%Y}}/{{stem}}.{{ext}}")
    before = snapshot(outside)
    report = process(config, drop(tmp_path))
    assert report.error == f"IMG_1.jpg: write failed: out/2024 {LINK_OUT}"
    assert snapshot(outside) == before


def test_a_folder_swapped_for_a_symlink_mid_walk(tmp_path, outside, monkeypatch):
    """An existing folder deep in the path is swapped just before the walk reaches it,
    after its parent was opened."""
    web = tmp_path / "out/2024/web"
    web.mkdir(parents=True)
    real_open = os.open

    def swapping_open(path, flags, mode=0o777, *, dir_fd=None):
        if path == "web" and dir_fd is not None and not web.is_symlink():
            web.rename(tmp_path / "web-away")
            web.symlink_to(outside)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", swapping_open)
    config = make_config(tmp_path, f"{tmp_path}/out/{{date:%Y}}/{{rule}}/{{stem}}.{{ext}}")
    before = snapshot(outside)
    result, _, _ = stage(config, drop(tmp_path))
    assert web.is_symlink()  # the swap happened, during the walk
    assert result.error == f"IMG_1.jpg: write failed: out/2024/web {LINK_OUT}"
    assert snapshot(outside) == before


# -- the primitives -----------------------------------------------------------------------


def test_without_hard_links_publishing_renames_without_clobbering(tmp_path, monkeypatch):
    """FAT and exFAT have no hard links: renameat2(RENAME_NOREPLACE) stands in."""
    import errno

    from amberpicd.fs.confined import open_dir

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a").write_bytes(b"a")
    (tmp_path / "d/b").write_bytes(b"b")
    with open_dir(tmp_path, "d") as d:
        with pytest.raises(FileExistsError):
            d.link_noreplace("a", d, "b")
        assert (tmp_path / "d/b").read_bytes() == b"b"
        d.link_noreplace("a", d, "c")
    assert (tmp_path / "d/c").read_bytes() == b"a" and not (tmp_path / "d/a").exists()


def test_open_dir_refuses_dot_dot_and_names_the_link(tmp_path, outside):
    from amberpicd.fs.confined import Escape, SymlinkRefused, open_dir

    (tmp_path / "root/x").mkdir(parents=True)
    with pytest.raises(Escape):
        open_dir(tmp_path / "root", "x/../..")
    (tmp_path / "root/x/link").symlink_to(outside)
    with pytest.raises(SymlinkRefused) as caught:
        open_dir(tmp_path / "root", "x/link/deeper", create=True)
    assert str(caught.value) == f"root/x/link {LINK_OUT}"
    assert not (outside / "deeper").exists()
    with open_dir(tmp_path / "root", "x") as d, pytest.raises(Escape):
        d.unlink("../escape")
