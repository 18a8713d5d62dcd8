"""Hostile input through the running daemon: the torture corpus (tests/corpus.py) dropped
into a live inbox. (The load run is in test_load_daemon.py.)

The daemon, its forkserver and its workers run under the network tripwire (tests/nonet).
For every regular file that should be taken: one journal row with a final state (done,
failed with a one-line error starting with the file's escaped name, or unmatched), within a
deadline. Files with the same content are one job (the daemon dedupes by content), so each
group of identical files gets exactly one row. Hidden and empty files, symlinks, FIFOs and
devices get none. Outputs decode cleanly and obey their rule, originals are byte-identical,
no temp file is left, the daemon still answers, and a rescan retries nothing.

The full corpus is ``slow``; ``pytest -m 'not slow'`` skips it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import corpus
import images
import pytest
import test_torture_engine as engine
from daemonproc import DaemonProc, wait_for
from exifcheck import exiftool, leaks

NONET = Path(__file__).parent / "nonet"
FINAL = {"done", "failed", "unmatched"}
HANG_TIMEOUT = 0.05  # job_timeout of the "hang" inbox: its bomb costs its worker
SETTLE = 0.3  # settle_seconds of every daemon here

# One inbox, one rule: every JPEG becomes a 16 px PNG (also the load test's config).
SMALL_CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 2
watch:
  - inbox: {root}/inbox
rules:
  - name: small
    pipeline: [{{resize: {{width: 16}}}}, {{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""

DAEMON = """
daemon:
  settle_seconds: {settle}
  workers: 2
"""


def tripwire(log: Path) -> dict[str, str]:
    """Environment putting a process tree under tests/nonet, logging to ``log``."""
    path = os.pathsep.join(p for p in (str(NONET), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "AMBERPIC_NONET": str(log)}


def torture_config(root: Path) -> str:
    """The engine torture's config (limits, two rules), a second inbox whose jobs time out
    at once, and the daemon section; braces escaped for DaemonProc's ``format``."""
    text = engine.write_config(root, root / "inbox", root / "out").read_text()
    hang = f"watch:\n  - inbox: {root}/hang\n    limits: {{job_timeout: {HANG_TIMEOUT}}}\n"
    assert text.count("watch:\n") == 1
    text = text.replace("watch:\n", hang)
    return text.replace("{", "{{").replace("}", "}}") + DAEMON


def distinct(entries: list[corpus.Entry]) -> list[corpus.Entry]:
    """The entries, with JPEGs whose bytes repeat an earlier entry's made different by a
    comment segment, so that every odd name goes through the decoder on content of its own
    (identical bytes under two names are two files, and both would be taken anyway)."""
    seen: set[bytes] = set()
    out = []
    for entry in entries:
        data = entry.data
        if entry.kind == "file" and data in seen and data.startswith(b"\xff\xd8"):
            tag = b"copy %d" % len(out)
            data = data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
            entry = corpus.Entry(entry.name, data, expect=entry.expect, walked=entry.walked)
        seen.add(data)
        out.append(entry)
    return out


def should_take(path: bytes, inbox: bytes) -> bool:
    """A regular, non-empty file with no hidden part in its name (the settle rule's)."""
    st = os.lstat(path)
    hidden = any(part.startswith(b".") for part in os.path.relpath(path, inbox).split(b"/"))
    return stat.S_ISREG(st.st_mode) and st.st_size > 0 and not hidden


def sha256(path: bytes) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@dataclass
class DaemonRun:
    d: DaemonProc
    expected: dict[bytes, corpus.Entry]  # the files the daemon must take
    groups: dict[str, list[bytes]]  # content hash → expected files with that content
    rows: dict[bytes, dict]  # history rows by source
    seconds: float
    nonet: Path
    procs: dict[int, int]  # the daemon's process tree at the end


def source(row: dict) -> bytes:
    return os.fsencode(row["source"])


def decided(d: DaemonProc, groups: dict[str, list[bytes]]) -> list[dict] | None:
    """The history once every content group has a final row and the daemon is idle; None
    before that."""
    if not d.idle():
        return None
    history = d.history()
    rows = {source(r): r for r in history}
    for members in groups.values():  # a file is its name and its content: each one decided
        if not all(rows.get(m, {}).get("state") in FINAL for m in members):
            return None
    return history if d.idle() else None


def undecided(d: DaemonProc, groups: dict[str, list[bytes]]) -> str:
    rows = {source(r): r for r in d.history()}
    missing = [
        [os.fsdecode(m) for m in members]
        for members in groups.values()
        if not all(rows.get(m, {}).get("state") in FINAL for m in members)
    ]
    return f"status {d.status()}; undecided: {missing}"


def rescans_answered(d: DaemonProc) -> int:
    """How often a file was declined as already decided: by the dispatcher (a log line each),
    or by a rescan passing over files unchanged since processed (a count per rescan)."""
    text = d.logs()
    passed = sum(int(n) for n in re.findall(r": (\d+) files unchanged since processed;", text))
    return text.count(": already processed (") + text.count(": failed before (") + passed


Drop = Callable[[Path, Path], list[tuple[Path, list[corpus.Entry]]]]


def run_daemon(root: Path, drop: Drop, deadline: float) -> DaemonRun:
    """Start the daemon under the tripwire, let ``drop(inbox, hang)`` place the files (it
    returns ``[(folder, entries)]``), and wait until every file is decided."""
    nonet = root / "nonet.log"
    d = DaemonProc(root, torture_config(root), settle=SETTLE, extra_env=tripwire(nonet)).start()
    try:
        started = time.monotonic()
        placed = drop(d.inbox, root / "hang")
        before = {**engine.snapshot(root / "inbox"), **engine.snapshot(root / "outside")}
        before.update(engine.snapshot(root / "hang"))
        expected: dict[bytes, corpus.Entry] = {}
        for folder, entries in placed:
            for entry in entries:
                path = os.path.join(os.fsencode(folder), entry.fsname)
                if should_take(path, os.fsencode(folder)):
                    expected[path] = entry
        groups: dict[str, list[bytes]] = defaultdict(list)
        for path in expected:
            groups[sha256(path)].append(path)
        try:
            history = wait_for(
                lambda: decided(d, groups), deadline, f"the daemon to decide {len(expected)} files"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{undecided(d, groups)}\n{d.logs()[-3000:]}") from None
        seconds = time.monotonic() - started
        rows = {source(r): r for r in history}
        assert len(rows) == len(history), "a file has two jobs"
        check_no_retry_loop(d, len(history), len(expected))
        procs = tree(d)
        assert d.status()["ok"] and d.proc is not None and d.proc.poll() is None
        after = {**engine.snapshot(root / "inbox"), **engine.snapshot(root / "outside")}
        after.update(engine.snapshot(root / "hang"))
        assert after == before, "an original or the inbox changed"
        assert d.stop() == 0
    finally:
        corpus.cleanup_special(root)
        d.close()
    return DaemonRun(d, expected, dict(groups), rows, seconds, nonet, procs)


def check_no_retry_loop(d: DaemonProc, rows: int, files: int) -> None:
    """A rescan (reload) offers every file again: each is declined, nothing runs again,
    and the history stays as it is for several settle periods after."""
    answered = rescans_answered(d)
    assert d.cli("reload").returncode == 0
    wait_for(
        lambda: rescans_answered(d) - answered >= files,
        60,
        f"the rescan to offer all {files} files again",
    )
    end = time.monotonic() + max(10 * SETTLE, 3.0)
    while time.monotonic() < end:
        assert d.idle(), d.status()
        assert len(d.history()) == rows, "the history grew after the run settled"
        threading.Event().wait(SETTLE)  # an observation window: nothing may happen in it


def check_daemon_run(run: DaemonRun) -> None:
    d = run.d
    assert "Traceback" not in d.logs(), d.logs()[-4000:]
    extra = [os.fsdecode(p) for p in run.rows if p not in run.expected]
    assert not extra, f"journal rows for files that must not be taken: {extra}"
    problems = []
    shim = SimpleNamespace(out=d.out)
    for members in run.groups.values():
        for member in members:  # identical bytes under two names are two files, each taken
            row = run.rows.get(member)
            if row is None or row["state"] not in FINAL:
                state = "no row" if row is None else f"state {row['state']}"
                problems.append(f"{os.fsdecode(member)}: {state}")
                continue
            problems += engine.check_file(shim, member, run.expected[member], to_report(row))
    assert not problems, "\n".join(problems)
    engine.check_no_temp_files(d.root)
    reported = {Path(o) for row in run.rows.values() for o in row["outputs"]}
    written = {p for p in d.out.rglob("*") if p.is_file()} if d.out.exists() else set()
    assert written == reported, f"outputs nobody reported: {written - reported}"
    found = {}
    for tags in exiftool(*sorted(reported)) if reported else []:
        fmt = engine.FORMATS[Path(tags["SourceFile"]).suffix].lower()
        if leaks(tags, fmt):
            found[tags["SourceFile"]] = leaks(tags, fmt)
    assert not found, found
    check_tripwire(run.nonet, d, run.procs)


def to_report(row: dict) -> dict:
    """A journal row in the shape of ``process --json`` lines (what check_file reads)."""
    return {**row, "status": row["state"]}


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def tree(d: DaemonProc) -> dict[int, int]:
    """The daemon's process tree now: {pid: parent pid}."""
    return {pid: parent(pid) for pid in d.pids()}


def check_tripwire(log: Path, d: DaemonProc, procs: dict[int, int]) -> None:
    """No violation, and every process of the tree ``procs`` had the hook: it logged its
    arming (a fresh interpreter) or is a fork of one that did (forks inherit the hook)."""
    lines = log.read_text().splitlines()
    violations = [line for line in lines if line.startswith("VIOLATION")]
    assert not violations, violations
    armed = {
        int(line.split()[1].removeprefix("pid=")) for line in lines if line.startswith("armed")
    }
    assert d.proc is not None and d.proc.pid in armed, "the daemon ran without the tripwire"
    assert len(procs) >= 3, f"no forkserver and worker seen: {procs}"  # daemon, server, worker
    bare = [pid for pid, ppid in procs.items() if pid not in armed and ppid not in armed]
    assert not bare, f"processes without the tripwire: {bare}"


# --- the corpus ----------------------------------------------------------------------------


def hang_entries() -> list[corpus.Entry]:
    # 49 MP to decode and resample: far more than HANG_TIMEOUT; the worker is killed.
    bomb = corpus.Entry(
        "bomb.png",
        corpus.png_zeros(7000, 7000, color=0),
        expect=f"bomb.png: worker failed: timed out after {HANG_TIMEOUT} s",
    )
    return [bomb]


def test_crafted_corpus_through_the_daemon(tmp_path: Path):
    # Made here, in memory: it needs nothing from the network, so it always runs.
    def drop(inbox: Path, hang: Path) -> list[tuple[Path, list[corpus.Entry]]]:
        made = corpus.populate(inbox, distinct(corpus.crafted()))
        return [(inbox, made), (hang, corpus.populate(hang, hang_entries()))]

    run = run_daemon(tmp_path, drop, deadline=300)
    print(f"\ncrafted corpus: {len(run.expected)} files decided in {run.seconds:.1f} s")
    check_daemon_run(run)
    by_name = {os.fsdecode(p).split("/inbox/", 1)[-1]: r for p, r in run.rows.items()}
    assert by_name["huge/huge.png"]["error"] == (
        "huge.png: 10000000000 pixels exceeds max_pixels 50000000"
    )
    assert by_name["names/-rf --help.jpg"]["state"] == "done"
    bomb = os.path.join(os.fsencode(tmp_path), b"hang/bomb.png")
    assert run.rows[bomb]["state"] == "failed"  # recorded once; the rescan did not rerun it


def test_pillow_sample_through_the_daemon(tmp_path: Path, pillow_images: Path):
    # Fails (not skips) when Pillow's images cannot be had: see conftest.pillow_images.
    quick = corpus.quick_pillow_files(pillow_images)
    assert len(quick) >= 30, "Pillow's test images moved: update corpus.QUICK_PILLOW"

    def drop(inbox: Path, hang: Path) -> list[tuple[Path, list[corpus.Entry]]]:
        return [(inbox, corpus.copy_pillow(pillow_images, quick, inbox))]

    run = run_daemon(tmp_path, drop, deadline=300)
    print(f"\nPillow sample: {len(run.expected)} files decided in {run.seconds:.1f} s")
    check_daemon_run(run)
    by_name = {os.fsdecode(p).split("/inbox/", 1)[-1]: r for p, r in run.rows.items()}
    assert by_name["pillow/fujifilm.mpo"]["error"].endswith("bytes exceeds max_file_bytes 8388608")
    assert by_name["pillow/cmx3g8_wv_1998.260_0745_mcidas.tiff"]["state"] == "done"


def test_an_empty_file_left_in_the_inbox_does_not_look_like_work(tmp_path: Path):
    """A zero-byte file waits for content (a download's placeholder), but is not queued
    work: the daemon goes idle, and takes the file once it is written."""
    d = DaemonProc(tmp_path, SMALL_CONFIG, settle=SETTLE).start()
    try:
        empty = d.inbox / "empty.jpg"
        empty.touch()
        images.jpeg(d.inbox / "mark.jpg", (32, 24))
        wait_for((d.out / "mark.png").exists, what="the file dropped after the empty one")
        wait_for(lambda: d.status()["state"] == "idle", what="the daemon to be idle")
        assert d.status()["queue"] == 0
        images.jpeg(empty, (32, 24), description="now with content")
        wait_for((d.out / "empty.png").exists, what="the empty file, once written")
    finally:
        d.close()


@pytest.mark.slow
def test_full_pillow_corpus_through_the_daemon(tmp_path: Path, pillow_images: Path):
    def drop(inbox: Path, hang: Path) -> list[tuple[Path, list[corpus.Entry]]]:
        files = corpus.pillow_files(pillow_images)
        return [(inbox, corpus.copy_pillow(pillow_images, files, inbox))]

    run = run_daemon(tmp_path, drop, deadline=1200)
    print(f"\nfull corpus: {len(run.expected)} files decided in {run.seconds:.1f} s")
    assert len(run.expected) > 700
    check_daemon_run(run)
    done = sum(r["state"] == "done" for r in run.rows.values())
    assert done > 400, f"only {done} of {len(run.rows)} jobs done"
