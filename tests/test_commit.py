"""commit() on real files without the daemon: idempotent publish, skip keeps the original,
the original step's own failure, and no temp file left on any path."""

from __future__ import annotations

from pathlib import Path

import pytest

from amberpicd.engine.commit import OriginalsPolicy, already_published, commit
from amberpicd.engine.pipeline import FileResult, PlannedOutput
from amberpicd.fs.identity import FileIdentity
from amberpicd.output.writer import StagedOutput, stage


class Recorder:
    def __init__(self, foreign: set[Path] = frozenset()):  # type: ignore[assignment]
        self.foreign_paths, self.steps = set(foreign), []

    def staged(self, result):
        self.steps.append("staged")

    def publishing(self, n, name):
        self.steps.append(("publishing", n, name.name))

    def published(self, outputs):
        self.steps.append(("published", [p.name for p in outputs]))

    def foreign(self, path):
        return path in self.foreign_paths

    def mine(self, path):
        return False


def staged_result(src: Path, out: Path, data: bytes, on_conflict: str = "rename") -> FileResult:
    st = src.stat()
    staged = stage(data, out / "a.png", on_conflict, "7-0")
    planned = PlannedOutput("web", staged.final, len(data), 1, 1, staged)
    return FileResult(src, "staged", ["web"], [planned], identity=FileIdentity.of(st))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "a.jpg"
    path.write_bytes(b"original")
    return path


def temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".amberpic-*")]


def test_identical_bytes_already_published_are_not_written_twice(tmp_path, src):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"someone else's")
    (out / "a-1.png").write_bytes(b"pixels")  # ours, from a run whose journal was lost
    rec = Recorder()
    report = commit(staged_result(src, out, b"pixels"), OriginalsPolicy("delete"), recorder=rec)
    assert report.status == "done" and report.outputs == [out / "a-1.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a-1.png", "a.png"]
    assert not src.exists() and not temps(out)
    assert ("publishing", 0, "a-1.png") in rec.steps


def test_identical_bytes_of_another_source_get_their_own_name(tmp_path, src):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"pixels")  # the same bytes, but another file's output
    rec = Recorder(foreign={out / "a.png"})
    report = commit(staged_result(src, out, b"pixels"), OriginalsPolicy("keep"), recorder=rec)
    assert report.outputs == [out / "a-1.png"] and (out / "a-1.png").read_bytes() == b"pixels"


def test_already_published_stops_at_the_first_free_name(tmp_path, src):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"other")
    (out / "a-2.png").write_bytes(b"pixels")  # past a free a-1.png: publish takes a-1 first
    staged = StagedOutput(out / ".amberpic-x.tmp", out / "a.png", "rename")
    staged.temp.write_bytes(b"pixels")
    assert already_published(staged, None) is None
    skip = StagedOutput(staged.temp, out / "a.png", "skip")
    (out / "a-1.png").write_bytes(b"pixels")
    assert already_published(skip, None) is None  # skip and overwrite: only the final name
    assert already_published(staged, None) == out / "a-1.png"


@pytest.mark.parametrize("policy", ["delete", "move", "trash"])
def test_a_skipped_output_keeps_the_original(tmp_path, src, policy):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"another photo's output")
    originals = OriginalsPolicy(policy, tmp_path / "archive")
    result = staged_result(src, out, b"pixels", on_conflict="skip")
    report = commit(result, originals, recorder=Recorder())
    assert report.status == "skipped" and src.read_bytes() == b"original"
    assert report.note and "kept the original" in report.note and "a.png" in report.note
    assert (out / "a.png").read_bytes() == b"another photo's output" and not temps(out)


def test_original_step_failure_is_its_own_step(tmp_path, src):
    out = tmp_path / "out"
    (tmp_path / "archive").write_text("a file where the archive folder should be")
    originals = OriginalsPolicy("move", tmp_path / "archive")
    report = commit(staged_result(src, out, b"pixels"), originals, recorder=Recorder())
    assert (report.status, report.step) == ("failed", "original")
    assert report.error.startswith("a.jpg: outputs written; could not move the original: ")
    assert "Errno" not in report.error
    assert report.outputs == [out / "a.png"] and src.exists() and not temps(out)


def test_a_recorder_that_fails_leaves_no_temp(tmp_path, src):
    class Broken(Recorder):
        def staged(self, result):
            raise RuntimeError("journal gone")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        commit(staged_result(src, out, b"pixels"), OriginalsPolicy("delete"), recorder=Broken())
    assert not temps(out) and not (out / "a.png").exists() and src.exists()


def test_recovery_never_counts_a_noted_name_holding_another_file(tmp_path):
    """The state a JournalError at the second mark_published of a rename chain, then a kill
    -9, leaves: staged, the temp discarded, and the noted name is another photo's output."""
    from confineattack import make_config

    from amberpicd.daemon.recovery import recover
    from amberpicd.journal import Journal
    from amberpicd.journal import StagedOutput as JournalStaged

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = inbox / "a.jpg"
    src.write_bytes(b"the only copy of this photo")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"another photo's output")
    config = make_config(tmp_path, inbox, originals="delete")
    identity = FileIdentity.of(src.stat())
    with Journal(tmp_path / "journal.db") as journal:
        job = journal.begin_file(src, "fp", inbox=inbox, identity=identity, originals="delete")
        journal.identify(job, "0" * 64, identity)
        temp = out / ".amberpic-1-0.png.tmp"  # discarded: not on disk
        journal.stage(job, [JournalStaged(temp, out / "a.png", "rename")])
        journal.mark_published(job, 0, out / "a.png")  # noted, then the link found it taken
        rerun: list[int] = []
        recover(journal, config, rerun=lambda j: rerun.append(j.id))
        assert journal.get(job).state == "running" and rerun == [job]  # it runs again
    assert src.read_bytes() == b"the only copy of this photo"
    assert (out / "a.png").read_bytes() == b"another photo's output"


def test_where_hard_links_fail_a_temp_renamed_into_place_makes_recovery_rerun(
    tmp_path, monkeypatch
):
    """FAT and exFAT have no hard links: publish renames the temp into place, so a crash
    before published is recorded leaves a staged job without its temp. Recovery runs it
    again (it never trusts the noted name), and the rerun finds its output by its bytes."""
    import errno
    import os

    from confineattack import make_config

    from amberpicd.daemon.recovery import recover
    from amberpicd.engine.recording import JournalRecorder
    from amberpicd.journal import Journal
    from amberpicd.journal import StagedOutput as JournalStaged
    from amberpicd.output.writer import publish

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    src = inbox / "a.jpg"
    src.write_bytes(b"the only copy of this photo")
    config = make_config(tmp_path, inbox, originals="delete")
    identity = FileIdentity.of(src.stat())
    with Journal(tmp_path / "journal.db") as journal:
        job = journal.begin_file(src, "fp", inbox=inbox, identity=identity, originals="delete")
        journal.identify(job, "0" * 64, identity)
        staged = stage(b"pixels", out / "a.png", "rename", f"{job}-0")
        journal.stage(job, [JournalStaged(staged.temp, staged.final, "rename")])
        assert publish(staged, lambda p: journal.mark_published(job, 0, p)) == out / "a.png"
        assert not staged.temp.exists()  # renamed into place; then the crash
        rerun: list[int] = []
        recover(journal, config, rerun=lambda j: rerun.append(j.id))
        assert rerun == [job] and journal.get(job).state == "running"
        assert src.exists() and (out / "a.png").read_bytes() == b"pixels"
        result = staged_result(src, out, b"pixels")  # the rerun: the same bytes again
        report = commit(
            result, OriginalsPolicy("delete"), recorder=JournalRecorder(journal, job, src)
        )
    assert report.status == "done" and report.outputs == [out / "a.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png"] and not src.exists()
