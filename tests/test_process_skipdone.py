"""`amberpicd process` knows what is done: the daemon's journal, real files, real SQLite.

A file is its path, its content and the rules: a second run skips what the first did and
says so; ``--force`` redoes it; an edit or another name is new work. The daemon and
``process`` share one journal, so each skips what the other did, also while both run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, one_inbox, wait_for

from amberpicd.cli.main import main
from amberpicd.fs.identity import RACY_NS

OPENLOG = Path(__file__).parent / "openlog"
RULES = """
rules:
  - name: web
    pipeline: [{{resize: {{width: 64}}}}, {{encode: webp}}]
    output: {out}/{{stem}}.{{ext}}
    on_conflict: rename
"""


def setup(tmp_path: Path, n: int = 4) -> tuple[Path, Path]:
    """A config with no inbox (every file is outside: journaled with no inbox) and n photos."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(RULES.format(out=tmp_path / "out"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(n):
        images.jpeg(photos / f"p{i}.jpg", (200 + 10 * i, 150))
    return cfg, photos


def run(cfg: Path, *args: str, capsys) -> tuple[int, str, list[str]]:
    code = main(["-c", str(cfg), "process", "-j", "2", *args])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files(folder)}


def journal_file(tmp_path: Path) -> Path:
    return tmp_path / "xdg-state" / "amberpic" / "journal.db"  # conftest's XDG_STATE_HOME


def jobs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return [
            (Path(s).name, st)
            for s, st in conn.execute("SELECT source, state FROM jobs ORDER BY id")
        ]


def test_a_second_run_skips_every_file_writes_nothing_and_says_so(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path)
    code, _, err = run(cfg, str(photos), capsys=capsys)
    assert code == 0 and err[-1].startswith("4 done, 0 skipped, 0 failed"), err
    before = snapshot(tmp_path / "out")
    assert sorted(before) == ["p0.webp", "p1.webp", "p2.webp", "p3.webp"]

    code, out, err = run(cfg, str(photos), capsys=capsys)
    assert code == 0
    assert err[-1].startswith("0 done, 4 already done (use --force to redo), 0 skipped, 0 failed")
    assert out == "" and len(err) == 1  # said once, at the end
    assert snapshot(tmp_path / "out") == before  # no p0-1.webp, nothing rewritten

    code, out, _ = run(cfg, "--json", str(photos), capsys=capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(r["status"] for r in rows) == ["already"] * 4
    code, out, _ = run(cfg, "-v", str(photos), capsys=capsys)
    assert "already p1.jpg: done before (same name, content and rules)" in out.splitlines()
    assert snapshot(tmp_path / "out") == before
    assert [s for _, s in jobs(journal_file(tmp_path))] == ["done"] * 4  # skips add no jobs


def test_a_settled_file_is_skipped_by_the_stat_cache_without_being_read(tmp_path: Path):
    """Opens counted by tests/openlog (an audit hook in every process of the run)."""
    cfg, photos = setup(tmp_path, n=2)
    newest = max(os.lstat(p).st_ctime_ns for p in files(photos))
    wait_for(lambda: time.time_ns() - newest > RACY_NS, 10, "the racy window")  # cacheable
    log = tmp_path / "opens.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(OPENLOG), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "AMBERPIC_OPENLOG": str(log),
        "AMBERPIC_OPENLOG_UNDER": str(photos),
    }

    def process() -> tuple[subprocess.CompletedProcess[str], list[str]]:
        log.unlink(missing_ok=True)
        command = ["-c", str(cfg), "process", "-j", "1", str(photos)]
        proc = subprocess.run(
            [sys.executable, "-m", "amberpicd", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = log.read_text().splitlines()
        assert any(line.startswith("armed ") for line in lines)  # the hook was there
        return proc, [line for line in lines if not line.startswith("armed ")]

    proc, opened = process()
    assert proc.returncode == 0 and len(opened) == 2, (proc.stderr, opened)  # control: read
    proc, opened = process()
    assert proc.returncode == 0 and "2 already done" in proc.stderr, proc.stderr
    assert opened == []  # no file read again


def test_an_unsettled_file_is_hashed_by_its_worker_and_skipped(tmp_path: Path, capsys):
    """Just written, its identity is not cached: the worker reads and hashes it, then stops."""
    cfg, photos = setup(tmp_path, n=1)
    assert run(cfg, str(photos), capsys=capsys)[0] == 0
    with sqlite3.connect(journal_file(tmp_path)) as conn:
        conn.execute("DELETE FROM stat_cache")  # as if it had been too fresh to cache
    before = snapshot(tmp_path / "out")
    code, _, err = run(cfg, str(photos), capsys=capsys)
    assert code == 0 and "1 already done" in err[-1] and snapshot(tmp_path / "out") == before


def test_force_redoes_done_files(tmp_path: Path, capsys):
    """``--force`` runs every file again. Publishing stays idempotent: an output that still
    holds exactly the bytes made is this file's own (no ``-1`` copy of it); a name that now
    holds other bytes is taken, so ``on_conflict: rename`` writes ``-1``; a deleted output,
    which a plain re-run does not bring back (the file is done), comes back."""
    cfg, photos = setup(tmp_path)
    run(cfg, str(photos), capsys=capsys)
    (tmp_path / "out" / "p0.webp").unlink()
    (tmp_path / "out" / "p1.webp").write_bytes(b"edited by the user")
    code, _, err = run(cfg, str(photos), capsys=capsys)
    assert code == 0 and "4 already done" in err[-1] and not (tmp_path / "out" / "p0.webp").exists()
    code, out, err = run(cfg, "--force", "--json", str(photos), capsys=capsys)
    assert code == 0
    rows = {Path(r["source"]).name: r for r in map(json.loads, out.splitlines())}
    assert {r["status"] for r in rows.values()} == {"done"}
    assert rows["p1.jpg"]["outputs"] == [str(tmp_path / "out" / "p1-1.webp")]
    names = sorted(p.name for p in files(tmp_path / "out"))
    assert names == ["p0.webp", "p1-1.webp", "p1.webp", "p2.webp", "p3.webp"]
    assert (tmp_path / "out" / "p1.webp").read_bytes() == b"edited by the user"
    assert [s for _, s in jobs(journal_file(tmp_path))] == ["done"] * 8  # recorded again
    code, _, err = run(cfg, str(photos), capsys=capsys)  # the redone ones are done too
    assert code == 0 and "4 already done" in err[-1]


def test_an_edited_file_is_redone_the_rest_skipped(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path)
    run(cfg, str(photos), capsys=capsys)
    images.jpeg(photos / "p2.jpg", (320, 240))  # new content under the same name
    code, out, _ = run(cfg, "--json", str(photos), capsys=capsys)
    rows = {Path(r["source"]).name: r for r in map(json.loads, out.splitlines())}
    assert code == 0 and rows["p2.jpg"]["status"] == "done"
    assert {rows[f"p{i}.jpg"]["status"] for i in (0, 1, 3)} == {"already"}
    assert rows["p2.jpg"]["outputs"] == [str(tmp_path / "out" / "p2-1.webp")]


def test_same_bytes_under_another_name_is_processed(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path)
    run(cfg, str(photos), capsys=capsys)
    shutil.copy2(photos / "p0.jpg", photos / "q.jpg")
    code, out, _ = run(cfg, "--json", str(photos), capsys=capsys)
    rows = {Path(r["source"]).name: r["status"] for r in map(json.loads, out.splitlines())}
    assert code == 0 and rows.pop("q.jpg") == "done" and set(rows.values()) == {"already"}
    assert (tmp_path / "out" / "q.webp").exists()


def test_other_rules_are_other_work(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path, n=1)
    run(cfg, str(photos), capsys=capsys)
    cfg.write_text(cfg.read_text().replace("width: 64", "width: 32"))
    code, _, err = run(cfg, str(photos), capsys=capsys)
    assert code == 0 and err[-1].startswith("1 done, 0 skipped"), err
    assert (tmp_path / "out" / "p0-1.webp").exists()


def test_a_failed_file_is_tried_again(tmp_path: Path, capsys):
    """Only done work is skipped: a user re-running after a failure wants it tried."""
    cfg, photos = setup(tmp_path, n=0)
    (photos / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    assert run(cfg, str(photos), capsys=capsys)[0] == 1
    code, _, err = run(cfg, str(photos), capsys=capsys)
    assert code == 1 and err[-1].startswith("0 done, 0 skipped, 1 failed"), err


def test_dry_run_writes_no_journal_and_reads_one(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path)
    db = journal_file(tmp_path)
    code, out, err = run(cfg, "--dry-run", str(photos), capsys=capsys)
    assert code == 0 and "4 done" in err[-1] and out.count("would write") == 4
    assert not db.parent.exists()  # no journal, not even its folder
    assert run(cfg, str(photos), capsys=capsys)[0] == 0
    assert db.exists() and len(jobs(db)) == 4  # control: a real run writes it
    raw = {p.name: p.read_bytes() for p in db.parent.iterdir() if p.name.startswith("journal")}
    code, out, _ = run(cfg, "--dry-run", "--json", str(photos), capsys=capsys)
    assert code == 0 and {json.loads(line)["status"] for line in out.splitlines()} == {"already"}
    code, out, err = run(cfg, "--dry-run", str(photos), capsys=capsys)
    assert code == 0 and "0 done, 4 already done" in err[-1]
    after = {p.name: p.read_bytes() for p in db.parent.iterdir() if p.name.startswith("journal")}
    assert after == raw and len(jobs(db)) == 4


def test_a_locked_journal_still_processes_with_one_line(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path, n=2)
    run(cfg, str(photos / "p0.jpg"), capsys=capsys)
    holder = sqlite3.connect(journal_file(tmp_path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds it (for longer than the timeout)
    try:
        code, _, err = run(cfg, str(photos), capsys=capsys)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 0
    warnings = [line for line in err if "journal" in line]
    assert len(warnings) == 1 and "locked" in warnings[0], err
    assert warnings[0].startswith("amberpicd: journal: journal.db: locked by another process")
    assert err[-1].startswith("2 done, 0 skipped")  # nothing skipped: p0 is redone
    # ... and its output, the same bytes, is recognised as its own: no p0-1.webp
    assert sorted(p.name for p in files(tmp_path / "out")) == ["p0.webp", "p1.webp"]


def test_an_unwritable_journal_folder_still_processes_with_one_line(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path, n=2)
    (tmp_path / "xdg-state").mkdir()
    (tmp_path / "xdg-state" / "amberpic").write_text("a file where the folder should be")
    code, _, err = run(cfg, str(photos), capsys=capsys)
    warnings = [line for line in err if "journal" in line]
    assert code == 0 and len(warnings) == 1 and "cannot create folder" in warnings[0], err
    assert err[-1].startswith("2 done")


def test_a_corrupt_journal_is_left_to_the_daemon_and_the_run_goes_on(tmp_path: Path, capsys):
    cfg, photos = setup(tmp_path, n=1)
    db = journal_file(tmp_path)
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database at all" * 200)
    code, _, err = run(cfg, str(photos), capsys=capsys)
    warnings = [line for line in err if "journal" in line]
    assert code == 0 and len(warnings) == 1 and "corrupt" in warnings[0], err
    assert db.read_bytes() == b"this is not a database at all" * 200  # not moved aside
    assert sorted(p.name for p in db.parent.iterdir()) == ["journal.db"]


# --- with the real daemon ----------------------------------------------------------------

DAEMON = one_inbox("keep")


@pytest.fixture
def daemon(tmp_path: Path):
    d = DaemonProc(tmp_path, DAEMON)
    d.inbox.mkdir()
    yield d
    d.close()


def process_cli(d: DaemonProc, *args: str) -> subprocess.CompletedProcess[str]:
    """``amberpicd process`` with the daemon's config and XDG_STATE_HOME (its journal)."""
    return d.cli("process", "-j", "1", *args, timeout=120)


def test_what_the_daemon_did_process_skips(daemon: DaemonProc):
    daemon.start()
    images.jpeg(daemon.inbox / "a.jpg", (300, 200))
    wait_for(lambda: (daemon.out / "a.webp").exists() and daemon.idle(), 30, "a.webp")
    before = snapshot(daemon.out)
    proc = process_cli(daemon, str(daemon.inbox))
    assert proc.returncode == 0, proc.stderr
    assert "0 done, 1 already done (use --force to redo)" in proc.stderr
    assert snapshot(daemon.out) == before
    assert daemon.status()["journal"]["error"] is None
    assert daemon.stop() == 0


def test_what_process_did_the_daemon_skips(daemon: DaemonProc):
    images.jpeg(daemon.inbox / "b.jpg", (300, 200))
    proc = process_cli(daemon, str(daemon.inbox))
    assert proc.returncode == 0 and (daemon.out / "b.webp").exists(), proc.stderr
    daemon.start()  # its start-up rescan finds b.jpg
    images.jpeg(daemon.inbox / "c.jpg", (300, 200))  # control: the daemon does process
    wait_for(lambda: (daemon.out / "c.webp").exists() and daemon.idle(), 30, "c.webp")
    assert sorted(p.name for p in files(daemon.out)) == ["b.webp", "c.webp"]
    history = daemon.history()
    assert sorted((Path(h["source"]).name, h["state"]) for h in history) == [
        ("b.jpg", "done"),
        ("c.jpg", "done"),
    ]
    assert daemon.stop() == 0


def test_process_while_the_daemon_runs_breaks_neither(daemon: DaemonProc, tmp_path: Path):
    """Both write the one journal at once (SQLite WAL, busy timeout): every file of each is
    done exactly once, the daemon keeps answering, and each then skips the other's work."""
    daemon.start()
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(6):
        images.jpeg(outside / f"x{i}.jpg", (400 + i, 300))
    command = ["-c", str(daemon.config), "process", "-j", "2", str(outside)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "amberpicd", *command],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for i in range(6):  # the daemon works while process does
        images.jpeg(daemon.inbox / f"d{i}.jpg", (400 + i, 300))
        assert daemon.status()["ok"]
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "journal" not in err and err.splitlines()[-1].startswith("6 done, 0 skipped")
    wanted = sorted([f"x{i}.webp" for i in range(6)] + [f"d{i}.webp" for i in range(6)])
    wait_for(lambda: len(files(daemon.out)) == 12 and daemon.idle(), 60, "12 outputs")
    assert sorted(p.name for p in files(daemon.out)) == wanted
    status = daemon.status()
    assert status["journal"]["error"] is None and status["state"] == "idle", status
    again = process_cli(daemon, str(outside), str(daemon.inbox))
    assert again.returncode == 0 and "0 done, 12 already done" in again.stderr, again.stderr
    assert sorted(p.name for p in files(daemon.out)) == wanted
    states = [h["state"] for h in daemon.history()]
    assert sorted(states) == ["done"] * 12
    assert daemon.stop() == 0


def test_a_process_killed_after_publishing_is_finished_by_the_daemon(
    daemon: DaemonProc, tmp_path: Path
):
    """``process`` dies (SIGKILL) right after its outputs are published: its job is left
    ``published`` in the journal; a second run takes the file over (its output recognised,
    the killed run's job superseded in the same transaction), so the daemon's start-up
    recovery has nothing left to finish (no second ``done`` of one file), and the next run
    skips it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    images.jpeg(outside / "k.jpg", (300, 200))
    crash = {**daemon.env, "AMBERPIC_TEST_CRASH_AT": "all_published"}
    command = ["-c", str(daemon.config), "process", "-j", "1", str(outside)]
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", *command], env=crash, capture_output=True, timeout=120
    )
    assert proc.returncode == -9 and (daemon.out / "k.webp").exists()
    assert [h["state"] for h in daemon.history()] == ["published"]  # control: left unfinished
    again = process_cli(daemon, str(outside))
    assert again.returncode == 0 and "1 done" in again.stderr  # not done yet: redone...
    assert sorted(p.name for p in files(daemon.out)) == ["k.webp"]  # ...its output recognised
    daemon.start()
    wait_for(daemon.idle, 30, "recovery")
    assert sorted(h["state"] for h in daemon.history()) == ["done", "retry"]
    assert "interrupted" not in daemon.logs(), daemon.logs()  # recovery redid nothing
    assert daemon.stop() == 0
    last = process_cli(daemon, str(outside))
    assert last.returncode == 0 and "0 done, 1 already done" in last.stderr, last.stderr


def test_decided_can_count_only_done_jobs(tmp_path: Path):
    """What ``process`` asks the journal: only done counts; a failure is a decision for the
    daemon (``retry`` undoes it) but not a reason for ``process`` to skip the file."""
    from amberpicd.errors import JournalError
    from amberpicd.fs.identity import FileIdentity
    from amberpicd.journal import Journal

    photo = images.jpeg(tmp_path / "a.jpg")
    identity = FileIdentity.of(os.lstat(photo))
    with Journal(tmp_path / "j.db") as journal:
        job = journal.begin_file(photo, "fp", inbox=None, identity=identity)
        journal.identify(job, "h1", identity)
        journal.fail(job, "a.jpg: broken")
        assert journal.decided(photo, "fp", "h1") is not None  # control: the daemon's view
        assert journal.decided(photo, "fp", "h1", states=("done",)) is None
        assert journal.decided_hashes(photo, "fp") == ("h1",)
        assert journal.decided_hashes(photo, "fp", states=("done",)) == ()
        with pytest.raises(JournalError, match="not decision states"):
            journal.decided(photo, "fp", "h1", states=("done'; DROP TABLE jobs; --",))
