"""The daemon on a temporary inbox: latency from a file's close to its output's rename,
against the bare pipeline on the same files; then its idle CPU and RSS.

Runs the real ``amberpicd run`` (own HOME, XDG dirs and config, like tests/daemonproc.py),
drops files one at a time (written, then closed: the watcher takes a closed file at once)
and waits for each output before the next. Idle cost is the daemon's whole process tree,
workers included, over a quiet period after the last job.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles

from harness import TICK, descendants

IDLE_SECONDS = 10.0


def measure(files: list[Path]) -> dict:
    """Latency percentiles, bare pipeline time and idle cost over ``files[1:]`` (distinct
    contents; the first warms up); ``skipped`` with the reason when the daemon cannot run."""
    root = Path(tempfile.mkdtemp(prefix="apd-bench-"))
    runtime = Path(tempfile.mkdtemp(prefix="apd-", dir="/tmp"))  # short AF_UNIX path
    proc = None
    try:
        inbox, out = root / "inbox", root / "out"
        inbox.mkdir()
        config = root / "config.yaml"
        config.write_text(_config(inbox, out))
        env = _env(root, runtime)
        log = open(root / "daemon.log", "w")  # noqa: SIM115 - closed with the daemon
        proc = subprocess.Popen(
            [sys.executable, "-m", "amberpicd", "-c", str(config), "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if not _until(lambda: _ready(runtime, proc), 30):
            return {"skipped": "the daemon did not start: " + _tail(root / "daemon.log")}
        # The first file warms up (workers started, modules imported) and is not measured.
        warmup, files = files[0], files[1:]
        _drop(warmup, inbox, out, "warmup")
        latencies = [_drop(f, inbox, out, f"f{n:03d}") for n, f in enumerate(files)]
        if any(v is None for v in latencies):
            return {"skipped": "an output never appeared: " + _tail(root / "daemon.log")}
        time.sleep(2.0)  # let the last job's bookkeeping finish before measuring idle
        idle_cpu, rss, rss_tree = _idle(proc.pid, IDLE_SECONDS)
        p99 = quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
        return {
            "files": len(files),
            "p50": median(latencies),
            "p99": p99,
            "bare_p50": median(_bare(files, root / "bare")),
            "idle_seconds": IDLE_SECONDS,
            "idle_cpu": idle_cpu,
            "idle_rss": rss,
            "idle_rss_tree": rss_tree,
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


def _config(inbox: Path, out: Path) -> str:
    return json.dumps(
        {
            "version": 1,
            "daemon": {"workers": 2, "tray": False, "notify": "off"},
            "watch": [{"inbox": str(inbox), "originals": "keep"}],
            "rules": [
                {
                    "name": "web",
                    "pipeline": [
                        "auto_orient",
                        {"resize": {"width": 2048, "height": 2048, "mode": "fit"}},
                        {"encode": {"format": "jpeg", "quality": 82, "progressive": True}},
                    ],
                    "keep_metadata": [],
                    "output": str(out / "{stem}.{ext}"),
                }
            ],
        }
    )


def _env(root: Path, runtime: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HOME": str(root / "home"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_CONFIG_HOME": str(root / "xdgconfig"),
    }
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(key, None)
    return env


def _ready(runtime: Path, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        return True  # exited: _until ends, the caller sees no socket answer
    try:
        from amberpicd.daemon.control import request

        return bool(request(runtime / "amberpic" / "control.sock", "status").get("ok"))
    except Exception:
        return False


def _until(condition, timeout: float, period: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return False


def _drop(source: Path, inbox: Path, out: Path, stem: str) -> float | None:
    """Seconds from closing ``inbox/stem.jpg`` to ``out/stem.jpg`` appearing (published by
    rename, so it appears whole)."""
    data = source.read_bytes()
    target = out / f"{stem}.jpg"
    with open(inbox / f"{stem}.jpg", "wb") as f:
        f.write(data)
    closed = time.perf_counter()
    if not _until(target.exists, 60):
        return None
    return time.perf_counter() - closed


def _bare(files: list[Path], folder: Path) -> list[float]:
    """The engine alone on the same files, in this process: read, decode, resize, encode,
    stage (no watcher, queue, worker hand-off or publish)."""
    from amberpicd.config.loader import parse_config
    from amberpicd.engine.batch import plan
    from amberpicd.engine.pipeline import run
    from amberpicd.workers.child import engine_setup

    engine_setup()
    folder.mkdir()
    config = parse_config(_config(folder / "in", folder), None, None)
    times = []
    for n, path in enumerate([files[0], *files]):
        job = plan(config, path)[0]
        started = time.perf_counter()
        result = run(job)
        elapsed = time.perf_counter() - started
        for o in result.outputs:
            if o.staged is not None:
                o.staged.temp.unlink(missing_ok=True)
        if n:  # the first run imports and warms up, as the daemon's warm-up file did
            times.append(elapsed)
    return times


def _idle(pid: int, seconds: float) -> tuple[float, int, int]:
    """(% of one core used by the process tree over ``seconds``, daemon RSS, tree RSS)."""

    def ticks() -> int:
        total = 0
        for p in [pid, *descendants(pid)]:
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total

    before = ticks()
    time.sleep(seconds)
    used = (ticks() - before) / TICK
    return 100 * used / seconds, _rss(pid), sum(_rss(p) for p in [pid, *descendants(pid)])


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text().strip().splitlines()[-3:])
    except OSError:
        return "(no log)"
