"""The journal on real SQLite files: lifecycle, dedupe decisions, crashes, corruption, locks."""

from __future__ import annotations

import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import amberpicd
from amberpicd.errors import JournalError, JournalGone
from amberpicd.journal import SCHEMA_VERSION, Journal, StagedOutput


def unmatched(journal: Journal, source: Path, content_hash: str, fp: str, **kw: object) -> int:
    """What the daemon records for a file no rule matches: begun, then no match."""
    job_id = journal.begin(source, content_hash, fp, **kw)  # type: ignore[arg-type]
    journal.no_match(job_id)
    return job_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.db"


@pytest.fixture
def journal(db: Path):
    j = Journal(db)
    yield j
    j.close()


def committed_state(db: Path, job_id: int) -> str:
    """The state as another connection sees it: only what was committed."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    finally:
        conn.close()


def run_job(j: Journal, name: str, content_hash: str, fp: str = "fp", inbox: Path | None = None):
    job_id = j.begin(Path(f"/in/{name}"), content_hash, fp, inbox=inbox, rules=["web"])
    final = Path(f"/out/{name}.webp")
    temp = Path(f"/out/.amberpic-{job_id}-0.webp.tmp")
    j.stage(job_id, [StagedOutput(temp, final, "rename")])
    j.published(job_id, [final])
    j.finish(job_id)
    return job_id


def test_lifecycle_commits_every_state(journal: Journal, db: Path) -> None:
    src, inbox = Path("/in/a.jpg"), Path("/in")
    job_id = journal.begin(src, "h1", "fp1", inbox=inbox, size=123, mtime_ns=456, rules=["w", "t"])
    job = journal.get(job_id)
    assert (job.state, job.source, job.inbox, job.rules) == ("running", src, inbox, ("w", "t"))
    assert (job.size, job.mtime_ns, job.finished) == (123, 456, None)
    assert job.started is not None and job.created == job.started
    assert committed_state(db, job_id) == "running"

    outs = [
        StagedOutput(Path(f"/o/.amberpic-{job_id}-0.webp.tmp"), Path("/o/a.webp"), "rename"),
        StagedOutput(Path(f"/o/.amberpic-{job_id}-1.jpg.tmp"), Path("/o/a.jpg"), "overwrite"),
    ]
    journal.stage(job_id, outs)
    assert committed_state(db, job_id) == "staged"
    assert journal.staged_outputs(job_id) == outs

    journal.published(job_id, [Path("/o/a-1.webp"), Path("/o/a.jpg")])
    assert committed_state(db, job_id) == "published"
    assert journal.get(job_id).outputs == (Path("/o/a-1.webp"), Path("/o/a.jpg"))

    journal.finish(job_id)
    assert committed_state(db, job_id) == "done"
    assert journal.get(job_id).finished is not None

    failing = journal.begin(Path("/in/b.jpg"), "h2", "fp1")
    journal.fail(failing, "b.jpg: decode failed: file is truncated")
    assert committed_state(db, failing) == "failed"
    assert journal.get(failing).error == "b.jpg: decode failed: file is truncated"

    lonely = unmatched(journal, Path("/in/c.txt"), "h3", "fp1", inbox=inbox)
    assert committed_state(db, lonely) == "unmatched"
    assert journal.get(lonely).finished is not None


def test_illegal_transitions_and_unknown_jobs_raise(journal: Journal) -> None:
    job_id = journal.begin(Path("/in/a.jpg"), "h", "fp")
    with pytest.raises(JournalError, match="cannot go from running to done"):
        journal.finish(job_id)
    with pytest.raises(JournalError, match="cannot go from running to published"):
        journal.published(job_id, [])
    journal.fail(job_id, "boom")
    with pytest.raises(JournalError, match="cannot go from failed to failed"):
        journal.fail(job_id, "again")
    with pytest.raises(JournalError, match="no job 999"):
        journal.get(999)
    with pytest.raises(JournalError, match="no job 999"):
        journal.stage(999, [])
    assert journal.get(job_id).error == "boom"  # the refused change left the row alone


def test_decision_semantics(journal: Journal) -> None:
    assert journal.decision("h", "fp") is None
    running = journal.begin(Path("/in/a.jpg"), "h", "fp")
    assert journal.decision("h", "fp") is None  # running decides nothing yet
    journal.fail(running, "boom")
    assert journal.decision("h", "fp").id == running  # failed: not retried in a loop
    assert journal.decision("h", "fp").state == "failed"

    retried = journal.retry()
    assert [(j.id, j.state) for j in retried] == [(running, "retry")]
    assert journal.decision("h", "fp") is None  # due again after retry

    done = run_job(journal, "a.jpg", "h")
    assert journal.decision("h", "fp").id == done
    assert journal.decision("h2", "fp") is None  # the file changed
    assert journal.decision("h", "fp2") is None  # its rules changed

    lonely = unmatched(journal, Path("/in/x.txt"), "hx", "fp")
    assert journal.decision("hx", "fp").id == lonely


def test_decision_is_latest_by_id_for_concurrent_begins(journal: Journal) -> None:
    first = journal.begin(Path("/in/a.jpg"), "h", "fp")
    second = journal.begin(Path("/in/copy of a.jpg"), "h", "fp")
    journal.fail(second, "boom")
    journal.stage(first, [])
    journal.published(first, [])
    journal.finish(first)  # finished last in time, but it began first
    assert journal.decision("h", "fp").id == second


def test_retry_by_source(journal: Journal) -> None:
    a = journal.begin(Path("/in/a.jpg"), "ha", "fp")
    b = journal.begin(Path("/in/b.jpg"), "hb", "fp")
    journal.fail(a, "x")
    journal.fail(b, "y")
    assert [j.id for j in journal.retry(Path("/in/b.jpg"))] == [b]
    assert journal.decision("ha", "fp").state == "failed"
    assert journal.decision("hb", "fp") is None
    assert journal.retry(Path("/in/b.jpg")) == []
    assert [j.source for j in journal.retry()] == [Path("/in/a.jpg")]


def test_unfinished_after_abandoned_journal(db: Path) -> None:
    first = Journal(db)
    running = first.begin(Path("/in/r.jpg"), "hr", "fp")
    staged = first.begin(Path("/in/s.jpg"), "hs", "fp")
    out = StagedOutput(Path("/o/.amberpic-2-0.jpg.tmp"), Path("/o/s.jpg"), "rename")
    first.stage(staged, [out])
    published = first.begin(Path("/in/p.jpg"), "hp", "fp")
    first.stage(published, [])
    first.published(published, [])
    run_job(first, "d.jpg", "hd")
    # The first journal is abandoned without close, as by a crash; a new daemon opens the file.
    second = Journal(db)
    try:
        assert second.recovered_from is None
        assert [(j.id, j.state) for j in second.unfinished()] == [
            (running, "running"),
            (staged, "staged"),
            (published, "published"),
        ]
        assert second.staged_outputs(staged) == [out]
        second.fail(running, "interrupted")
        assert [j.id for j in second.unfinished()] == [staged, published]
    finally:
        second.close()
        first.close()


CHILD = """
import sys
from pathlib import Path
from amberpicd.journal import Journal, StagedOutput
j = Journal(sys.argv[1])
i = 0
while True:
    job = j.begin(Path(f"/in/{i}.jpg"), f"h{i}", "fp", rules=["web"])
    temp, final = Path(f"/o/.amberpic-{job}-0.jpg.tmp"), Path(f"/o/{i}.jpg")
    j.stage(job, [StagedOutput(temp, final, "rename")])
    j.published(job, [final])
    j.finish(job)
    print(job, flush=True)
    i += 1
"""


def test_kill_9_mid_write_leaves_every_reported_transaction_whole(db: Path) -> None:
    # Atomicity across a killed process only: the OS keeps a killed process's writes, so this
    # passes with synchronous=OFF too. Durability is test_every_commit_is_synced_to_disk.
    Journal(db).close()
    root = Path(amberpicd.__file__).parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], cwd=root, stdout=subprocess.PIPE, text=True
    )
    reported: list[int] = []
    deadline = time.monotonic() + 15
    try:
        while len(reported) < 40:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "child wrote too slowly"
            if select.select([proc.stdout], [], [], remaining)[0]:
                line = proc.stdout.readline()
                assert line, f"child exited early with {proc.poll()}"
                reported.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of its next job
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with Journal(db) as j:
        assert j.recovered_from is None
        assert j.pragma("integrity_check") == "ok"
        assert all(j.get(job_id).state == "done" for job_id in reported)
        assert all(j.decision(f"h{n}", "fp").id == job for n, job in enumerate(reported))
        assert len(j.unfinished()) <= 1  # at most the job it was killed in
        assert j.is_output(Path("/o/0.jpg"))


def test_wal_and_synchronous_full(journal: Journal, db: Path) -> None:
    assert journal.pragma("journal_mode") == "wal"
    assert journal.pragma("synchronous") == 2  # FULL
    assert journal.pragma("user_version") == SCHEMA_VERSION
    assert db.exists()


def test_garbage_file_is_moved_aside(db: Path) -> None:
    db.parent.mkdir(parents=True)
    garbage = os.urandom(3000)
    db.write_bytes(garbage)
    Path(f"{db}-wal").write_bytes(b"stale wal")
    with Journal(db) as j:
        moved = j.recovered_from
        assert moved is not None and moved.name.startswith("journal.db.corrupt-")
        assert moved.read_bytes() == garbage
        # SQLite itself drops a -wal that does not belong to a valid database; either way, the
        # stale one must not be replayed into the fresh journal.
        assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").read_bytes() != b"stale wal"
        job_id = run_job(j, "a.jpg", "h")
        assert j.decision("h", "fp").id == job_id
    with Journal(db) as again:
        assert again.recovered_from is None
        assert again.get(job_id).state == "done"


def test_corrupt_pages_are_detected_by_quick_check(db: Path) -> None:
    with Journal(db) as j:
        for n in range(1500):
            j.begin(Path(f"/in/{'long name ' * 10}{n}.txt"), f"h{n}", "fp")
    with db.open("r+b") as f:  # keep the header page, smash a run of pages after it
        f.seek(4096 * 4)
        f.write(os.urandom(4096 * 6))
    with Journal(db) as j:
        assert j.recovered_from is not None and j.recovered_from.exists()
        assert j.recent() == []


@pytest.mark.parametrize("wal", [True, False], ids=["journal", "plain-db"])
def test_locked_by_another_process(db: Path, wal: bool) -> None:
    db.parent.mkdir(parents=True)
    if wal:
        Journal(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("CREATE TABLE IF NOT EXISTS t (x)")
        other.execute("BEGIN EXCLUSIVE")
        start = time.monotonic()
        with pytest.raises(JournalError, match=r"^journal\.db: locked by another process$"):
            Journal(db, timeout=0.2)
        assert 0.15 < time.monotonic() - start < 5
    finally:
        other.close()
    Journal(db).close()  # usable once the lock is gone, not treated as corrupt
    assert not list(db.parent.glob("*.corrupt-*"))


def test_write_blocked_after_open_raises(journal: Journal, db: Path) -> None:
    fast = Journal(db, timeout=0.2)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(JournalError, match="locked by another process"):
            fast.begin(Path("/in/a.jpg"), "h", "fp")
        assert fast.recent() == []  # reads still work in WAL mode
    finally:
        other.close()
        fast.close()


def test_is_output(journal: Journal) -> None:
    job_id = journal.begin(Path("/in/a.jpg"), "h", "fp")
    temp = Path(f"/o/.amberpic-{job_id}-0.jpg.tmp")
    journal.stage(job_id, [StagedOutput(temp, Path("/o/a.jpg"), "rename")])
    # Known before publishing: the watcher may see the file before published() is recorded.
    assert journal.is_output(temp) and journal.is_output(Path("/o/a.jpg"))
    journal.mark_published(job_id, 0, Path("/o/a-1.jpg"))  # a.jpg existed: renamed
    assert journal.is_output(Path("/o/a-1.jpg"))
    assert journal.staged_outputs(job_id)[0].published == Path("/o/a-1.jpg")
    journal.published(job_id, [Path("/o/a-1.jpg")])
    assert journal.is_output(Path("/o/a-1.jpg"))
    assert not journal.is_output(Path("/o/a.jpg"))  # the user's file we did not write
    assert not journal.is_output(Path("/in/a.jpg"))
    with pytest.raises(JournalError, match="no staged output 5"):
        other = journal.begin(Path("/in/b.jpg"), "h2", "fp")
        journal.stage(other, [])
        journal.mark_published(other, 5, Path("/o/b.jpg"))


def test_recent_newest_first_and_failed_only(journal: Journal) -> None:
    ids = [run_job(journal, f"{n}.jpg", f"h{n}") for n in range(3)]
    bad = journal.begin(Path("/in/bad.jpg"), "hb", "fp")
    journal.fail(bad, "nope")
    ids.append(bad)
    ids.append(journal.begin(Path("/in/now.jpg"), "hn", "fp"))
    assert [j.id for j in journal.recent()] == ids[::-1]
    assert [j.id for j in journal.recent(2)] == ids[:2:-1]
    assert [j.id for j in journal.recent(failed_only=True)] == [bad]


def test_counts_per_inbox_and_since(db: Path) -> None:
    now = [1000.0]
    with Journal(db, clock=lambda: now[0]) as j:
        photos, scans = Path("/home/u/Photos"), Path("/home/u/Scans")
        run_job(j, "a.jpg", "ha", inbox=photos)
        j.fail(j.begin(Path("/x.jpg"), "hx", "fp", inbox=photos), "bad")
        now[0] = 2000.0
        run_job(j, "b.jpg", "hb", inbox=photos)
        run_job(j, "c.jpg", "hc", inbox=scans)
        unmatched(j, Path("/d.txt"), "hd", "fp")
        j.begin(Path("/e.jpg"), "he", "fp", inbox=scans)
        assert j.counts() == {
            str(photos): {"done": 2, "failed": 1},
            str(scans): {"done": 1, "running": 1},
            "": {"unmatched": 1},
        }
        assert j.counts(since=1500.0) == {
            str(photos): {"done": 1},
            str(scans): {"done": 1, "running": 1},
            "": {"unmatched": 1},
        }


def test_eight_threads_keep_counts_consistent(journal: Journal) -> None:
    per_thread, ids, errors = 25, [], []
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        try:
            barrier.wait(timeout=10)
            for n in range(per_thread):
                ids.append(run_job(journal, f"{t}-{n}.jpg", f"h{t}-{n}"))
                assert journal.decision(f"h{t}-{n}", "fp") is not None
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(set(ids)) == 8 * per_thread
    assert journal.counts() == {"": {"done": 8 * per_thread}}
    assert journal.unfinished() == []


def test_prune_keeps_latest_decision(db: Path) -> None:
    now = [1000.0]
    with Journal(db, clock=lambda: now[0]) as j:
        old_fail = j.begin(Path("/in/a.jpg"), "h", "fp")
        j.fail(old_fail, "boom")
        j.retry()
        done = run_job(j, "a.jpg", "h")
        lone_fail = j.begin(Path("/in/b.jpg"), "hb", "fp")
        j.fail(lone_fail, "boom")
        now[0] += 40 * 86400
        assert j.prune(30) == 1
        assert j.decision("h", "fp").id == done
        assert j.decision("hb", "fp").id == lone_fail
        assert j.staged_outputs(done) == []  # recovery data of old done jobs is dropped
        with pytest.raises(JournalError):
            j.get(old_fail)


def test_newer_schema_is_refused_not_discarded(db: Path) -> None:
    Journal(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer amberpicd"):
        Journal(db)
    assert db.exists() and not list(db.parent.glob("*.corrupt-*"))


def test_closed_journal_raises(db: Path) -> None:
    j = Journal(db)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.begin(Path("/in/a.jpg"), "h", "fp")


SYNC_CHILD = """
import sys
from pathlib import Path
from amberpicd.journal import Journal, StagedOutput
j = Journal(sys.argv[1])
if sys.argv[2] == "off":  # the control: what the test must be able to tell apart
    j._conn.execute("PRAGMA synchronous=OFF")
print(j.pragma("synchronous"), j.pragma("journal_mode"), flush=True)
for i in range(int(sys.argv[3])):
    job = j.begin(Path(f"/in/{i}.jpg"), f"h{i}", "fp")
    temp, final = Path(f"/o/.amberpic-{job}-0.jpg.tmp"), Path(f"/o/{i}.jpg")
    j.stage(job, [StagedOutput(temp, final, "rename")])
    j.published(job, [Path(f"/o/{i}.jpg")])
    j.finish(job)
j.close()
"""


def _syncs(db: Path, mode: str, jobs: int, tmp_path: Path) -> tuple[str, int]:
    """Run SYNC_CHILD under strace; returns its PRAGMA line and how many fsync/fdatasync
    calls it made on the journal's files (the WAL and the database)."""
    strace = shutil.which("strace")
    assert strace, "strace is needed (it is in .ci/run's packages)"
    trace = tmp_path / f"trace-{mode}.txt"
    root = Path(amberpicd.__file__).parent.parent
    proc = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-y", "-o", str(trace),
         sys.executable, "-c", SYNC_CHILD, str(db), mode, str(jobs)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    calls = [line for line in trace.read_text().splitlines() if "sync(" in line]
    return proc.stdout.strip(), sum(db.name in line for line in calls)


def test_every_commit_is_synced_to_disk(db: Path, tmp_path: Path) -> None:
    """Durability, which a kill -9 cannot show: with synchronous=FULL in WAL mode SQLite
    syncs the WAL at every commit, so a power cut after a commit returns loses nothing."""
    Journal(db).close()
    jobs, commits_per_job = 10, 4  # begin, stage, published, finish
    pragmas, syncs = _syncs(db, "full", jobs, tmp_path)
    assert pragmas == "2 wal"  # on the live connection: FULL, WAL
    assert syncs >= jobs * commits_per_job
    off_pragmas, off_syncs = _syncs(db, "off", jobs, tmp_path)  # control: the test can fail
    assert off_pragmas == "0 wal" and off_syncs < jobs


def test_original_failed_is_a_decision_and_retry_originals_resumes_it(journal: Journal) -> None:
    job = journal.begin(Path("/in/o.jpg"), "ho", "fp", rules=["web"])
    journal.stage(job, [StagedOutput(Path("/o/.amberpic-1-0.png.tmp"), Path("/o/o.png"), "rename")])
    journal.published(job, [Path("/o/o.png")])
    with pytest.raises(JournalError, match="cannot go from published to unmatched"):
        journal.no_match(job)
    journal.original_failed(job, "o.jpg: outputs written; could not move the original: x")
    assert journal.decision("ho", "fp").state == "original_failed"  # not due again
    assert journal.unfinished() == []
    assert [j.id for j in journal.recent(failed_only=True)] == [job]
    assert journal.retry() == []  # the pipeline's retry does not take it: its outputs exist
    assert journal.retry_originals(Path("/in/other.jpg")) == []
    (resumed,) = journal.retry_originals()
    assert (resumed.id, resumed.state, resumed.outputs) == (job, "published", (Path("/o/o.png"),))
    assert journal.get(job).state == "published" and journal.get(job).error is None
    assert [j.id for j in journal.unfinished()] == [job]  # a crash now: recovery finishes it
    journal.finish(job)
    assert journal.decision("ho", "fp").state == "done"


def test_output_sources(journal: Journal) -> None:
    run_job(journal, "a.jpg", "ha")
    assert journal.output_sources(Path("/out/a.jpg.webp")) == {Path("/in/a.jpg")}
    assert journal.output_sources(Path("/out/nothing.webp")) == set()


def test_read_only_never_creates_migrates_or_writes(db: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        Journal(db, read_only=True)
    assert not db.exists() and not db.parent.exists()
    with Journal(db) as j:
        run_job(j, "a.jpg", "ha")
    before = db.read_bytes()
    with Journal(db, read_only=True) as ro:
        assert [j.state for j in ro.recent()] == ["done"]
        with pytest.raises(JournalError, match="read-only"):
            ro.begin(Path("/in/b.jpg"), "hb", "fp")
    assert db.read_bytes() == before
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(db, read_only=True)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_journal_deleted_or_replaced_is_refused_then_reopened(db: Path, how: str) -> None:
    with Journal(db) as j:
        run_job(j, "a.jpg", "ha")
        assert j.check() is None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        if how == "replaced":
            sqlite3.connect(db).close()
        problem = j.check()
        assert problem and how.split()[0] in problem and problem.startswith("journal.db was ")
        with pytest.raises(JournalGone):  # a write to the lost file would vanish at restart
            j.begin(Path("/in/b.jpg"), "hb", "fp")
        j.reopen()
        assert j.check() is None and j.recent() == []
        run_job(j, "b.jpg", "hb")
    with Journal(db) as again:
        assert [job.source.name for job in again.recent()] == ["b.jpg"]
