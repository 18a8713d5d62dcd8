"""Running a tool's commands and measuring them: wall time, CPU time of the whole process
tree, and peak RSS per process (split into main processes and workers)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
WORKER_MARKS = ("forkserver", "multiprocessing", "amberpicd-worker", "pyvips-worker")


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: dict[str, str] | None = None  # added to (or replacing in) this process's environment
    unset: tuple[str, ...] = ()  # removed from it


@dataclass
class Measured:
    seconds: float = 0.0
    cpu: float = 0.0  # user + system seconds, every process of the run
    cpu_worker: float = 0.0  # of which worker processes (fork server, pool children)
    peak_main: int = 0  # bytes: the largest VmHWM among non-worker processes
    peak_worker: int = 0  # bytes: the largest VmHWM among worker processes
    errors: list[str] = field(default_factory=list)


class TreeMonitor:
    """Samples every process below ``root`` every ``period`` s: CPU ticks and VmHWM."""

    def __init__(self, root: int, period: float = 0.03):
        self.root, self.period = root, period
        # Processes already there (say, a resource tracker) are not the run's; nor is a
        # child between fork and exec, which still looks like (and maps) the parent.
        self.ignore = set(descendants(root))
        self.parent_cmdline = Path(f"/proc/{root}/cmdline").read_bytes()
        self.cpu: dict[int, int] = {}
        self.worker: set[int] = set()  # pids whose command line or name marks a worker
        self.hwm: dict[int, tuple[int, bool]] = {}  # pid -> (bytes, is_worker)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def sample(self) -> None:
        for pid in descendants(self.root):
            if pid in self.ignore:
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                stat = Path(f"/proc/{pid}/stat").read_text()
                status = Path(f"/proc/{pid}/status").read_text()
                # An exec between the reads would pair our fork's memory (the harness's,
                # up to a GiB after quality checks) with the new program's name.
                if Path(f"/proc/{pid}/cmdline").read_bytes() != cmdline:
                    continue
            except OSError:
                continue
            if cmdline == self.parent_cmdline:
                continue
            cmdline = cmdline.replace(b"\0", b" ")
            fields = stat[stat.rindex(")") + 2 :].split()
            self.cpu[pid] = max(self.cpu.get(pid, 0), int(fields[11]) + int(fields[12]))
            worker = any(m.encode() in cmdline for m in WORKER_MARKS) or "(amberpicd-work" in stat
            if worker:
                self.worker.add(pid)
            hwm = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), None)
            if hwm is None:
                continue
            size = int(hwm.split()[1]) * 1024
            self.hwm[pid] = (max(size, self.hwm.get(pid, (0, worker))[0]), worker)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values()) / TICK

    @property
    def worker_cpu_seconds(self) -> float:
        return sum(v for pid, v in self.cpu.items() if pid in self.worker) / TICK


def bytecode_cache(folder: Path, on: bool = True) -> None:
    """Python's bytecode cache for every tool run from here on, in ``folder``, as on a
    user's machine: pip compiles what it installs, but an editable install under
    ``PYTHONDONTWRITEBYTECODE`` (this project's development environment) would make
    amberpicd compile its ~100 modules, in its main process and its fork server, on every
    run, and pyvips (compiled in site-packages) none. ``on=False`` measures that case."""
    if on:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(folder)
    else:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


def descendants(pid: int) -> list[int]:
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


def run(commands: Sequence[Command], parallel: int = 1, timeout: float = 3600) -> Measured:
    """Run ``commands``, at most ``parallel`` at a time (a queue: whoever is free takes the
    next), and measure the whole run."""
    out = Measured()
    direct_cpu = 0.0
    lock = threading.Lock()

    def one(command: Command) -> None:
        nonlocal direct_cpu
        env = {**os.environ, **(command.env or {})}
        for var in command.unset:
            env.pop(var, None)
        proc = subprocess.Popen(
            command.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert proc.stderr is not None
        err = proc.stderr.read()  # drained while it runs: a full pipe would block the tool
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        with lock:
            direct_cpu += usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-3:]
                out.errors.append(f"{command.argv[0]} exit {proc.returncode}: {' | '.join(tail)}")

    started = time.perf_counter()
    with TreeMonitor(os.getpid()) as monitor, ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, commands, timeout=timeout))
    out.seconds = time.perf_counter() - started
    out.cpu = max(direct_cpu, monitor.cpu_seconds)
    out.cpu_worker = monitor.worker_cpu_seconds
    for size, worker in monitor.hwm.values():
        if worker:
            out.peak_worker = max(out.peak_worker, size)
        else:
            out.peak_main = max(out.peak_main, size)
    return out
