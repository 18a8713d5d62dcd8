"""File identity, read-once-and-verify, and the journal's memory of files (real files, SQLite)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import images
import pytest

from amberpicd.config.schema import Limits, Rule
from amberpicd.engine.pipeline import FileJob, run
from amberpicd.errors import SourceChanged
from amberpicd.fs.identity import RACY_NS, FileIdentity
from amberpicd.imaging import decode
from amberpicd.journal import SCHEMA_VERSION, Journal, StagedOutput
from amberpicd.journal.store import _MIGRATIONS


def ident(path: Path) -> FileIdentity:
    return FileIdentity.of(os.lstat(path))


# --- FileIdentity ---------------------------------------------------------------------------


def test_identity_sees_a_rewrite_with_mtime_put_back(tmp_path):
    p = tmp_path / "a.jpg"
    p.write_bytes(b"photo")
    before = ident(p)
    assert before.matches(os.lstat(p))
    st = os.lstat(p)
    p.write_bytes(b"PHOTO")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.lstat(p)
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)  # size+mtime fooled
    assert not before.matches(now)


def test_inode_reused_after_delete_is_another_identity(tmp_path):
    p = tmp_path / "a.jpg"
    p.write_bytes(b"photo")
    old = ident(p)
    for _ in range(50):  # freed inode numbers are handed out again: try until one is
        p.unlink()
        p.write_bytes(b"PHOTO")
        os.utime(p, ns=(old.mtime_ns, old.mtime_ns))
        if os.lstat(p).st_ino == old.ino:
            break
    assert not old.matches(os.lstat(p))


def test_settled_needs_a_ctime_older_than_the_racy_window():
    i = FileIdentity(1, 2, 3, 4, 10**18)
    assert not i.settled(10**18 + RACY_NS - 1)
    assert i.settled(10**18 + RACY_NS)
    assert not i.settled(10**18 - 5)  # a ctime in the future (clock skew) is never settled


# --- read once, verify ----------------------------------------------------------------------


def test_read_source_returns_the_identity_of_what_it_read(tmp_path):
    p = images.jpeg(tmp_path / "a.jpg", (32, 24))
    data, identity = decode.read_source(p, Limits())
    assert data == p.read_bytes() and identity == ident(p)


def test_a_file_written_during_the_read_is_changed(tmp_path, monkeypatch):
    p = images.jpeg(tmp_path / "a.jpg", (32, 24))
    real = decode._read_upto

    def read_then_write(f, expected, limit):
        data = real(f, expected, limit)
        with open(p, "r+b") as w:  # same size, another byte: only ctime/mtime tell
            w.seek(expected // 2)
            w.write(b"\x00")
        return data

    monkeypatch.setattr(decode, "_read_upto", read_then_write)
    with pytest.raises(SourceChanged, match="changed while being read"):
        decode.read_source(p, Limits())
    result = run(FileJob(p, (), Limits()))
    assert result.status == "changed" and result.outputs == []


RULE = Rule.model_validate(
    {"name": "web", "pipeline": [{"encode": "png"}], "output": "OUT/{stem}.{ext}"}
)


def test_run_hashes_what_it_decodes_and_stops_at_a_decided_hash(tmp_path):
    p = images.jpeg(tmp_path / "a.jpg", (32, 24))
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    rule = RULE.model_copy(update={"output": f"{tmp_path}/out/{{stem}}.{{ext}}"})
    result = run(FileJob(p, (rule,), Limits(), dry_run=True))
    assert result.status == "staged" and result.content_hash == digest
    assert result.identity == ident(p)
    stopped = run(FileJob(p, (rule,), Limits(), dry_run=True, done_hashes=(digest,)))
    assert stopped.status == "already" and stopped.outputs == [] and stopped.rules == []
    assert stopped.content_hash == digest


# --- the journal's file queries -------------------------------------------------------------


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state" / "journal.db")
    yield j
    j.close()


def done(j: Journal, source: Path, identity: FileIdentity, h: str, originals="keep", cache=True):
    job = j.begin_file(source, "fp", inbox=source.parent, identity=identity, originals=originals)
    j.identify(job, h, identity, cache=cache)
    j.stage(job, [StagedOutput(Path("/out/.t"), Path(f"/out/{source.stem}.png"), "rename")])
    j.published(job, [Path(f"/out/{source.stem}.png")])
    j.finish(job)
    return job


def test_decisions_are_per_path_and_content(journal, tmp_path):
    a, b = tmp_path / "in" / "a.jpg", tmp_path / "in" / "b.jpg"
    i = FileIdentity(1, 10, 5, 100, 200)
    job = done(journal, a, i, "h1")
    assert journal.decided(a, "fp", "h1").id == job
    assert journal.decided(b, "fp", "h1") is None  # same bytes, another name: due
    assert journal.decided(a, "fp", "h2") is None  # same name, other bytes: due
    assert journal.decided(a, "other rules", "h1") is None
    assert journal.decided_hashes(a, "fp") == ("h1",)
    assert journal.duplicate_of("h1", "fp", b) == (job, a)
    assert journal.duplicate_of("h1", "fp", a) is None


def test_a_moved_original_does_not_decide_a_new_file_at_its_path(journal, tmp_path):
    a = tmp_path / "in" / "a.jpg"
    done(journal, a, FileIdentity(1, 10, 5, 100, 200), "h1", originals="move")
    assert journal.decided(a, "fp", "h1") is None
    assert journal.decided_hashes(a, "fp") == ()


def test_stat_cache_needs_the_whole_identity(journal, tmp_path):
    i = FileIdentity(1, 10, 5, 100, 200)
    done(journal, tmp_path / "a.jpg", i, "h1")
    assert journal.cached_hash(i) == "h1"
    for other in (
        FileIdentity(2, 10, 5, 100, 200),
        FileIdentity(1, 11, 5, 100, 200),
        FileIdentity(1, 10, 6, 100, 200),
        FileIdentity(1, 10, 5, 101, 200),
        FileIdentity(1, 10, 5, 100, 201),  # inode reused, mtime forged: ctime differs
    ):
        assert journal.cached_hash(other) is None, other
    journal.remember(FileIdentity(1, 10, 7, 300, 400), "h2")  # a new file on that inode
    assert journal.cached_hash(i) is None
    assert journal.cached_hash(FileIdentity(1, 10, 7, 300, 400)) == "h2"


def test_unsettled_identities_are_not_cached(journal, tmp_path):
    i = FileIdentity(1, 10, 5, 100, 200)
    done(journal, tmp_path / "a.jpg", i, "h1", cache=False)
    assert journal.cached_hash(i) is None


def test_discard_forgets_a_running_job_only(journal, tmp_path):
    i = FileIdentity(1, 10, 5, 100, 200)
    job = journal.begin_file(tmp_path / "a.jpg", "fp", inbox=tmp_path, identity=i)
    journal.discard(job)
    assert journal.recent() == []
    kept = done(journal, tmp_path / "b.jpg", i, "h1")
    journal.discard(kept)
    assert journal.get(kept).state == "done"


def test_failure_before_the_read_is_decided_by_identity(journal, tmp_path):
    a, i = tmp_path / "a.jpg", FileIdentity(1, 10, 5, 100, 200)
    job = journal.begin_file(a, "fp", inbox=tmp_path, identity=i)
    journal.fail(job, "a.jpg: too large")
    assert journal.failed_unread(a, "fp", i).id == job
    assert journal.failed_unread(a, "fp", FileIdentity(1, 10, 5, 100, 201)) is None
    assert journal.get(job).identity == i


def test_a_version_1_journal_migrates_and_keeps_its_decisions(tmp_path):
    db = tmp_path / "journal.db"
    conn = sqlite3.connect(db)
    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO jobs (source, content_hash, fingerprint, state, created)"
        " VALUES ('/in/a.jpg', 'h1', 'fp', 'done', 1.0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Journal(db) as j:
        assert j.pragma("user_version") == SCHEMA_VERSION == 4
        assert j.decided(Path("/in/a.jpg"), "fp", "h1").state == "done"
        assert j.cached_hash(FileIdentity(0, 0, 0, 0, 0)) is None
        assert j.get(1).originals == "keep" and j.get(1).duplicate_of is None


def test_a_rescan_passes_over_only_files_unchanged_since_decided(tmp_path):
    from amberpicd.config.schema import Config
    from amberpicd.daemon.dispatcher import Dispatcher

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = Config.model_validate(
        {
            "watch": [{"inbox": str(inbox)}],
            "rules": [{"name": "t", "pipeline": [{"encode": "png"}], "output": "/o/{stem}.png"}],
        }
    )
    with Journal(tmp_path / "journal.db") as j:
        d = Dispatcher(j, None, None, lambda: config, in_flight=1)  # type: ignore[arg-type]
        fp = d._fingerprint(config, config.watch[0])
        paths = []
        for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
            p = inbox / name
            p.write_bytes(name.encode())
            identity = ident(p)
            job = j.begin_file(p, fp, inbox=inbox, identity=identity)
            j.identify(job, f"h-{name}", identity, cache=name != "d.jpg")  # d: racy, uncached
            j.stage(job, [])
            j.published(job, [])
            j.finish(job)
            paths.append(p)
        assert d.known(paths) == set(paths[:3])
        (inbox / "a.jpg").write_bytes(b"A.JPG")  # changed: read again
        os.link(inbox / "b.jpg", inbox / "b2.jpg")  # b's ctime moved; b2 is another path
        e = inbox / "e.jpg"
        e.write_bytes(b"c.jpg")  # c's bytes under another name: not decided for e
        assert d.known([*paths, inbox / "b2.jpg", e]) == {inbox / "c.jpg"}
