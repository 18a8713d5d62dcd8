"""One daemon per state folder: real flock across real processes."""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from amberpicd.daemon.lock import InstanceLock, lock_path
from amberpicd.errors import AmberpicError

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys
from pathlib import Path
from amberpicd.daemon.lock import InstanceLock
InstanceLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until killed or stdin closes
"""


def start_holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    assert ready, "the holder never reported"
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_lock_path_is_in_the_state_dir():
    assert lock_path({"XDG_STATE_HOME": "/s"}) == Path("/s/amberpic/daemon.lock")
    assert lock_path({"HOME": "/home/ann"}) == Path("/home/ann/.local/state/amberpic/daemon.lock")


def test_acquire_creates_folder_0700_and_writes_pid(tmp_path: Path):
    path = tmp_path / "state" / "amberpic" / "daemon.lock"
    with InstanceLock(path) as lock:
        assert lock.held
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == f"{os.getpid()}\n"
    assert not lock.held
    assert path.exists()  # never deleted: deleting lock files races
    assert path.read_text() == ""


def test_second_lock_in_the_same_process_fails_then_succeeds_after_release(tmp_path: Path):
    path = tmp_path / "daemon.lock"
    first = InstanceLock(path)
    first.acquire()
    with pytest.raises(AmberpicError) as err:
        InstanceLock(path).acquire()
    assert str(err.value) == (
        f"another amberpicd (pid {os.getpid()}) is already running with state in {tmp_path}"
    )
    first.release()
    first.release()  # idempotent
    with InstanceLock(path):
        pass


def test_other_process_holds_then_sigkill_frees_the_lock(tmp_path: Path):
    path = tmp_path / "state" / "daemon.lock"
    holder = start_holder(path)
    try:
        with pytest.raises(AmberpicError, match=rf"another amberpicd \(pid {holder.pid}\)"):
            InstanceLock(path).acquire()
        assert path.read_text() == f"{holder.pid}\n"
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
        assert holder.wait(10) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdin.close()  # type: ignore[union-attr]
        holder.stdout.close()  # type: ignore[union-attr]
    assert path.read_text() == f"{holder.pid}\n"  # a stale pid is left: it does not matter
    with InstanceLock(path) as lock:
        assert lock.held
        assert path.read_text() == f"{os.getpid()}\n"


def test_our_lock_blocks_another_process(tmp_path: Path):
    path = tmp_path / "daemon.lock"
    with InstanceLock(path):
        proc = subprocess.run(
            [sys.executable, "-c", HOLDER, str(path)],
            cwd=ROOT,
            input="",
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert f"another amberpicd (pid {os.getpid()}) is already running" in proc.stderr


def test_unusable_lock_folder_is_an_amberpic_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AmberpicError, match="cannot open the lock file"):
        InstanceLock(blocker / "daemon.lock").acquire()
