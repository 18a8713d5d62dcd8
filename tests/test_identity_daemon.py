"""A file is its inbox, its path and its content: the real daemon, real inotify, real SQLite.

Opens are counted with tests/openlog (an audit hook in every process of the daemon's tree),
so "read once" and "a restart reads nothing" are measured, not assumed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, files, wait_for
from PIL import Image

from amberpicd.fs.identity import RACY_NS

OPENLOG = Path(__file__).parent / "openlog"

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: WORKERS
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
    duplicates: DUPLICATES
rules:
  - name: web
    pipeline: [auto_orient, {{resize: {{width: SIZE, height: SIZE}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def config(
    originals: str = "keep", duplicates: str = "process", workers: int = 2, size: int = 64
) -> str:
    return (
        CONFIG.replace("ORIGINALS", originals)
        .replace("DUPLICATES", duplicates)
        .replace("WORKERS", str(workers))
        .replace("SIZE", str(size))
    )


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, start: bool = True, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, text, **kw)
        d.inbox.mkdir(exist_ok=True)
        procs.append(d)
        return d.start() if start else d

    yield make
    for d in procs:
        d.close()


def count_opens(d: DaemonProc, log: Path) -> None:
    """Log every Python-level open below the inbox, in the daemon and its workers."""
    d.env.update(
        PYTHONPATH=os.pathsep.join([str(OPENLOG), d.env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        AMBERPIC_OPENLOG=str(log),
        AMBERPIC_OPENLOG_UNDER=str(d.inbox),
    )


def opens(log: Path, inbox: Path | None = None, skip_pid: int | None = None) -> list[str]:
    """Paths opened below the inbox (by any process but ``skip_pid``). A read through a
    folder descriptor is logged by its bare name (``@x.bmp``); the files these tests drop
    all lie in the inbox itself, so such a name is placed there (``inbox`` defaults to the
    one folder every test here uses)."""
    lines = log.read_text().splitlines() if log.exists() else []
    found = [line.split(" ", 1)[1] for line in lines if not line.startswith("armed ")
             and (skip_pid is None or line.split(" ", 1)[0] != str(skip_pid))]  # fmt: skip
    folder = inbox if inbox is not None else log.parent / "inbox"
    return [str(folder / p[1:]) if p.startswith("@") else p for p in found]


def armed(log: Path) -> int:
    return sum(line.startswith("armed ") for line in log.read_text().splitlines())


def jobs(d: DaemonProc) -> list[tuple[str, str, str]]:
    """(source name, content hash, state) of every job, oldest first, read-only."""
    conn = sqlite3.connect(f"file:{d.root / 'state' / 'amberpic' / 'journal.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT source, content_hash, state FROM jobs ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(Path(s).name, h, st) for s, h, st in rows]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settled_for_cache(folder: Path) -> None:
    """Wait until every file below ``folder`` is older (ctime) than the racy window, so the
    hashes workers find are cached (fs/identity.py: a younger ctime could hide a change)."""
    newest = max(os.lstat(p).st_ctime_ns for p in files(folder))
    wait_for(lambda: time.time_ns() - newest > RACY_NS, timeout=10, what="the racy window")


def drop_copies(photo: Path, inbox: Path, n: int) -> list[str]:
    names = [f"IMG_{i:04}.jpg" for i in range(n)]
    for name in names:
        shutil.copyfile(photo, inbox / f".{name}.part")
        os.rename(inbox / f".{name}.part", inbox / name)  # moved in: ready at once
    return names


def test_300_drops_of_one_photo_under_300_names_give_300_outputs(daemon, tmp_path):
    photo = images.jpeg(tmp_path / "photo.jpg", (64, 48))
    d = daemon(config())
    names = drop_copies(photo, d.inbox, 300)
    wait_for(lambda: len(files(d.out)) >= 300, timeout=180, what="300 outputs")
    wait_for(d.idle)
    assert sorted(p.name for p in files(d.out)) == sorted(n[:-4] + ".webp" for n in names)
    done = [(name, h) for name, h, state in jobs(d) if state == "done"]
    assert sorted(name for name, _ in done) == sorted(names)
    assert {h for _, h in done} == {sha(photo)}


@pytest.mark.slow
def test_300_copies_across_a_kill_9_mid_burst_and_a_restart(daemon, tmp_path):
    photo = images.jpeg(tmp_path / "photo.jpg", (320, 240))
    d = daemon(config())
    names = drop_copies(photo, d.inbox, 300)
    wait_for(lambda: len(files(d.out)) >= 40, timeout=120, what="the burst to be under way")
    d.kill()
    at_kill = len([p for p in files(d.out) if not p.name.startswith(".amberpic-")])
    assert at_kill < 300, "control: the kill came after the burst, not in the middle of it"
    d.start()
    wait_for(lambda: len(files(d.out)) >= 300, timeout=240, what="300 outputs")
    wait_for(d.idle)
    d.stop()
    d.start()  # and a clean restart adds nothing
    wait_for(d.idle)
    outputs = sorted(p.name for p in files(d.out))
    assert outputs == sorted(n[:-4] + ".webp" for n in names), "duplicates or missing outputs"
    done = sorted(name for name, _, state in jobs(d) if state == "done")
    assert done == sorted(names)
    for p in files(d.out):
        with Image.open(p) as im:
            im.load()


def test_duplicates_skip_logs_it_and_still_moves_the_original(daemon, tmp_path):
    photo = images.jpeg(tmp_path / "photo.jpg", (64, 48))
    d = daemon(config("move", "skip"))
    shutil.copyfile(photo, d.inbox / "IMG_1.jpg")
    wait_for((d.root / "archive" / "IMG_1.jpg").exists, what="IMG_1 moved")
    wait_for(d.idle)
    shutil.copyfile(photo, d.inbox / "IMG_2.jpg")
    wait_for(lambda: "IMG_2.jpg: duplicate of IMG_1.jpg; not processed" in d.logs(), what="log")
    wait_for((d.root / "archive" / "IMG_2.jpg").exists, what="the duplicate in the archive")
    wait_for(d.idle)
    assert files(d.inbox) == []  # nothing stranded
    assert [p.name for p in files(d.out)] == ["IMG_1.webp"]
    assert sha(d.root / "archive" / "IMG_2.jpg") == sha(photo)
    # Control: a different photo in the same inbox is processed as usual.
    images.jpeg(d.inbox / "IMG_3.jpg", (64, 48), description="another")
    wait_for((d.out / "IMG_3.webp").exists)


def test_duplicates_process_is_the_default_and_unknown_values_are_refused(daemon, tmp_path):
    d = daemon(config().replace("    duplicates: process\n", ""), start=False)
    assert d.cli("check").returncode == 0
    d.write_config(config(duplicates="maybe").format(root=tmp_path, settle=0.3))
    bad = d.cli("check")
    assert bad.returncode != 0 and "duplicates" in bad.stderr + bad.stdout


def solid_bmp(path: Path, color: tuple[int, int, int], size=(3000, 2000)) -> Path:
    Image.new("RGB", size, color).save(path, "BMP")  # same dimensions: same byte size
    return path


def test_file_replaced_mid_job_is_not_deleted_and_its_new_content_is_processed(daemon, tmp_path):
    log = tmp_path / "opens.log"
    d = daemon(config("delete", size=1600), start=False)
    count_opens(d, log)
    d.start()
    target = d.inbox / "x.bmp"
    solid_bmp(tmp_path / "old.bmp", (200, 0, 0))
    solid_bmp(tmp_path / "new.bmp", (0, 0, 200))
    old_st = os.stat(tmp_path / "old.bmp")
    # The replacement is staged first (a dot file the daemon ignores), so that mid-job only
    # a rename is left to do: copying 18 MB after the worker opened x.bmp raced the job.
    staged = d.inbox / ".x.new"
    shutil.copyfile(tmp_path / "new.bmp", staged)
    shutil.copyfile(tmp_path / "old.bmp", tmp_path / "x.tmp")
    os.rename(tmp_path / "x.tmp", target)
    # Same size, mtime put back (cp -p, exiftool -P).
    os.utime(staged, ns=(old_st.st_atime_ns, os.stat(target).st_mtime_ns))
    assert (os.stat(staged).st_size, os.stat(staged).st_mtime_ns) == (
        os.stat(target).st_size,
        os.stat(target).st_mtime_ns,
    )
    # A worker's open, not the daemon's own (identify hashes the file first: a rename right
    # after that open gave the job the new content alone, and the test no attack, CI).
    assert d.proc is not None
    wait_for(lambda: str(target) in opens(log, skip_pid=d.proc.pid), what="a worker to open x.bmp")
    os.rename(staged, target)  # mid-job: another file renamed over it
    new_hash = sha(tmp_path / "new.bmp")
    wait_for(
        lambda: any(h == new_hash and s == "done" for _, h, s in jobs(d)),
        timeout=60,
        what="the new content to be processed",
    )
    wait_for(d.idle)
    hashes = [h for _, h, _ in jobs(d)]
    assert sha(tmp_path / "old.bmp") in hashes, "the replacement was not mid-job"
    assert not target.exists()  # deleted, but only once its own content was processed
    blue = [p for p in files(d.out) if corner(p)[2] > 150]
    assert len(blue) == 1 and len(files(d.out)) == 2, files(d.out)


def corner(path: Path) -> tuple[int, ...]:
    with Image.open(path) as im:
        return im.convert("RGB").getpixel((5, 5))


def test_name_replaced_while_queued_gives_one_output_of_the_new_content(daemon, tmp_path):
    log = tmp_path / "opens.log"
    d = daemon(config(workers=1, size=3000), start=False)  # one worker: a second job waits
    count_opens(d, log)
    d.start()
    noise = [Image.effect_noise((4000, 3000), 80) for _ in range(3)]
    Image.merge("RGB", noise).save(tmp_path / "big.bmp")  # seconds to encode as WebP
    os.rename(tmp_path / "big.bmp", d.inbox / "big.bmp")
    wait_for(lambda: str(d.inbox / "big.bmp") in opens(log), what="the long job to start")
    x = d.inbox / "x.jpg"
    images.jpeg(tmp_path / "x-old.jpg", (64, 48), description="old")
    images.jpeg(tmp_path / "x-new.jpg", (64, 48), description="new")
    os.rename(tmp_path / "x-old.jpg", x)
    wait_for(lambda: d.status()["in_flight"] == 2, what="x.jpg's job to wait for the worker")
    os.rename(tmp_path / "x-new.jpg", x)  # replaced while its job waits
    new_hash = sha(x)
    assert str(x) not in opens(log), "x.jpg was read before it was replaced"
    assert d.status()["in_flight"] == 2  # its job still waits behind big.bmp
    wait_for(lambda: (d.out / "x.webp").exists() and d.idle(), timeout=60)
    assert [p.name for p in files(d.out)] == ["big.webp", "x.webp"]
    xs = [(h, s) for name, h, s in jobs(d) if name == "x.jpg"]
    assert xs == [(new_hash, "done")], xs


@pytest.mark.parametrize("n", [500, pytest.param(10_000, marks=pytest.mark.slow)])
def test_restart_and_reload_over_processed_kept_files_open_none_of_them(daemon, tmp_path, n):
    d = daemon(config(), start=False)
    d.inbox.mkdir(exist_ok=True)
    for i in range(n):
        images.jpeg(d.inbox / f"k{i:04}.jpg", (16, 12), description=str(i))
    settled_for_cache(d.inbox)
    log = tmp_path / "opens.log"
    count_opens(d, log)
    d.start()
    wait_for(lambda: len(files(d.out)) == n, timeout=max(180, n / 10), what=f"{n} outputs")
    wait_for(d.idle)
    first = opens(log)
    # Read once: each file opened exactly once, by a worker (the dispatcher reads nothing).
    assert sorted(first) == sorted(str(p) for p in files(d.inbox)), "not one open per file"
    assert d.stop() == 0
    log.unlink()
    d.start()
    wait_for(d.idle)
    assert d.cli("reload").returncode == 0
    wait_for(lambda: d.status()["config"]["generation"] >= 1)
    wait_for(d.idle)
    assert armed(log) >= 2  # the hook was in the daemon and its forkserver
    assert opens(log) == [], f"{len(opens(log))} files opened after a restart"
    assert len(jobs(d)) == n and len(files(d.out)) == n
    # Control: a changed file is read again (the cache is keyed by the whole identity).
    images.jpeg(d.inbox / "k0000.jpg", (16, 12), description="edited")
    wait_for(lambda: str(d.inbox / "k0000.jpg") in opens(log), what="the edited file read")
    wait_for(lambda: len(jobs(d)) == n + 1 and jobs(d)[-1][2] == "done", what="its new job done")
    # Only EXIF changed, and outputs carry none: the same output bytes, already published
    # under this source's name, are recognised rather than written again as k0000-1.webp.
    assert len(files(d.out)) == n


def test_hard_links_are_two_files_and_both_are_deleted_after_their_outputs(daemon, tmp_path):
    d = daemon(config("delete"))
    images.jpeg(tmp_path / "a.jpg", (64, 48))
    os.link(tmp_path / "a.jpg", tmp_path / "b.jpg")  # one inode, two names
    os.rename(tmp_path / "a.jpg", d.inbox / "a.jpg")
    os.rename(tmp_path / "b.jpg", d.inbox / "b.jpg")
    wait_for(lambda: len(files(d.out)) == 2 and not files(d.inbox), what="both handled")
    wait_for(d.idle)
    assert [p.name for p in files(d.out)] == ["a.webp", "b.webp"]
    assert sorted((name, state) for name, _, state in jobs(d)) == [
        ("a.jpg", "done"),
        ("b.jpg", "done"),
    ]
