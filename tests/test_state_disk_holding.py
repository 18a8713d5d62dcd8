"""While the daemon holds work for a full state disk: it costs nothing (no busy loop), a
SIGTERM ends it cleanly with every held file untouched, and after a restart with room each
file dropped while it held is processed exactly once. Real daemon, real tmpfs, real SQLite."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import images
import need
from daemonproc import DaemonProc, files, one_inbox, wait_for
from test_state_disk_full import fill, first_output

CONFIG = one_inbox("move")
NAMES = ["a", "b", "c"]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def test_holding_is_idle_stops_cleanly_and_resumes_once(tmp_path: Path):
    with need.tmpfs(tmp_path / "state", "4m") as state:
        d = DaemonProc(tmp_path, CONFIG)
        d.inbox.mkdir()
        try:
            first_output(d)
            d.kill()  # a crash: the WAL left as it was
            filler = fill(state)
            d.start()
            originals = {}
            for name in NAMES:
                src = images.jpeg(d.inbox / f"{name}.jpg", (300, 200))
                originals[name] = src.read_bytes()
            wait_for(lambda: d.status()["journal"]["error"], 30, "the journal error")
            pids = d.pids()
            before = cpu_seconds(pids)

            assert "a.jpg" not in d.logs()  # control: held, not processed
            time.sleep(5)  # a window to measure CPU over (not a synchronisation)
            spent = cpu_seconds(pids) - before
            assert spent < 0.5, f"holding used {spent:.2f} s of CPU in 5 s"
            assert d.stop() == 0, d.logs()  # SIGTERM while holding
            for name in NAMES:
                assert (d.inbox / f"{name}.jpg").read_bytes() == originals[name]
            assert files(d.out) == [d.out / "first.webp"]
            filler.unlink()
            d.start()
            want = sorted(d.out / f"{n}.webp" for n in ["first", *NAMES])
            wait_for(lambda: files(d.out) == want and d.idle(), 60, "every held file done")
            assert not any((d.inbox / f"{n}.jpg").exists() for n in NAMES)  # moved, once
            done = sorted(Path(h["source"]).name for h in d.history() if h["state"] == "done")
            assert done == sorted(["first.jpg", *(f"{n}.jpg" for n in NAMES)]), d.history()
            assert d.stop() == 0
        finally:
            d.close()


def test_a_read_only_state_folder_holds_work_and_resumes(tmp_path: Path):
    """The state folder's filesystem mounted read-only (root ignores file modes, a mount
    does not): no WAL or -shm can be made. The daemon stays up, says so once, processes
    nothing it could not journal, and goes on when the filesystem is writable again."""
    with need.tmpfs(tmp_path / "state", "4m") as state:
        d = DaemonProc(tmp_path, CONFIG)
        d.inbox.mkdir()
        try:
            first_output(d)
            assert d.stop() == 0  # a clean stop: the WAL checkpointed and removed
            subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
            src = images.jpeg(d.inbox / "a.jpg", (300, 200))
            original = src.read_bytes()
            d.start(wait=False)
            said = "journal.db: its filesystem is mounted read-only"
            wait_for(lambda: said in d.logs(), 30, "the read-only journal said")
            time.sleep(3)  # a window in which it must neither exit nor process (not a sync)
            assert d.proc is not None and d.proc.poll() is None, d.logs()
            assert d.logs().count(said) == 1, d.logs()
            assert src.read_bytes() == original and files(d.out) == [d.out / "first.webp"]
            subprocess.run(["mount", "-o", "remount,rw", str(state)], check=True)
            wait_for(lambda: (d.out / "a.webp").exists() and not src.exists(), 60, "a.webp")
            wait_for(d.idle, 30, "idle")
            assert files(d.out) == [d.out / "a.webp", d.out / "first.webp"]
            assert d.stop() == 0
        finally:
            d.close()
