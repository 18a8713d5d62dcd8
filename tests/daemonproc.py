"""Run the real daemon as a subprocess on temporary folders, and wait on conditions."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amberpicd.daemon.control import request


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def one_inbox(originals: str = "keep") -> str:
    """A DaemonProc config: one inbox ``{root}/inbox`` (``move`` archives to ``{root}/archive``),
    one worker, one rule ``web`` writing a 64 px wide WebP to ``{root}/out`` (names taken:
    ``rename``, the default)."""
    archive = "\n    archive: {root}/archive" if originals == "move" else ""
    return f"""
daemon:
  settle_seconds: {{settle}}
  workers: 1
watch:
  - inbox: {{root}}/inbox
    originals: {originals}{archive}
rules:
  - name: web
    pipeline: [{{{{resize: {{{{width: 64}}}}}}}}, {{{{encode: webp}}}}]
    output: {{root}}/out/{{{{stem}}}}.{{{{ext}}}}
"""


class DaemonProc:
    """``amberpicd run`` in a subprocess with its own HOME, XDG dirs and config."""

    def __init__(
        self,
        root: Path,
        config_text: str,
        *,
        settle: float = 0.3,
        extra_env: dict[str, str] | None = None,
    ):
        self.root = root
        self.inbox = root / "inbox"
        self.out = root / "out"
        self.config = root / "config.yaml"
        # AF_UNIX paths are limited to 108 bytes: the runtime dir lives under /tmp.
        self.runtime = Path(tempfile.mkdtemp(prefix="apd-", dir="/tmp"))
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_CONFIG_HOME": str(root / "xdgconfig"),
            "PYTHONUNBUFFERED": "1",
        }
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "DISPLAY", "WAYLAND_DISPLAY"):
            self.env.pop(key, None)
        self.env.update(extra_env or {})  # e.g. the network tripwire (tests/nonet)
        self.write_config(config_text.format(root=root, settle=settle))
        self.proc: subprocess.Popen[str] | None = None
        self.run_args: tuple[str, ...] = ("-v",)  # arguments after ``run``
        self.log = root / "daemon.log"

    def write_config(self, text: str) -> None:
        self.config.write_text(text)

    @property
    def socket(self) -> Path:
        return self.runtime / "amberpic" / "control.sock"

    def start(self, wait: bool = True) -> DaemonProc:
        self.logfile = open(self.log, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amberpicd", "-c", str(self.config), "run", *self.run_args],
            env=self.env,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if wait:
            wait_for(self.ready, 30, "the daemon to answer status")
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            return bool(self.status().get("ok"))
        except Exception:
            return False

    def cmd(self, name: str, **args: Any) -> dict:
        return request(self.socket, name, **args)

    def status(self) -> dict:
        return self.cmd("status")

    def logs(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amberpicd", "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def history(self) -> list[dict]:
        proc = self.cli("history", "-n", "100000", "--json")
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    def idle(self) -> bool:
        s = self.status()
        return s["queue"] == 0 and s["in_flight"] == 0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.logfile.close()
        return code

    def kill(self) -> None:
        """SIGKILL the daemon and its worker processes, as a crash would end them."""
        assert self.proc is not None
        children = _descendants(self.proc.pid)
        self.proc.kill()
        self.proc.wait(10)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.logfile.close()

    def pids(self) -> list[int]:
        """The daemon's pid, then every process below it (forkserver, workers)."""
        assert self.proc is not None
        return [self.proc.pid, *_descendants(self.proc.pid)]

    def workers(self) -> list[int]:
        """The worker processes: the forkserver's children."""
        assert self.proc is not None
        servers = [
            pid
            for pid in _descendants(self.proc.pid)
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and _parent(pid) == self.proc.pid
        ]
        return [pid for server in servers for pid in _descendants(server) if _parent(pid) == server]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.runtime, ignore_errors=True)


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
