"""How long the daemon takes to be ready again over an inbox of files it already processed.

    .venv/bin/python benchmarks/restart_ready.py [--files 10000] [--settle 2.0]

Fills a temporary inbox with ``--files`` small distinct JPEGs (``originals: keep``, so they
all stay), lets the real ``amberpicd run`` process them once, stops it, and starts it again.
"Ready" is the first moment ``status`` answers with nothing queued, settling or in flight:
the catch-up scan of the inbox is done and found nothing to do. Also counts, with the
tests/openlog audit hook in every process of the daemon's tree, how many inbox files the
restarted daemon opened (the stat cache means: none).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daemon_latency import _env, _until
from PIL import Image

from amberpicd.daemon.control import request
from amberpicd.fs.identity import RACY_NS

OPENLOG = Path(__file__).resolve().parent.parent / "tests" / "openlog"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--settle", type=float, default=2.0, help="settle_seconds (default 2)")
    parser.add_argument("--restarts", type=int, default=3, help="timed restarts (default 3)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="apd-restart-"))
    runtime = Path(tempfile.mkdtemp(prefix="apd-", dir="/tmp"))  # short AF_UNIX path
    try:
        print(json.dumps(measure(root, runtime, args.files, args.settle, args.restarts), indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
    return 0


def measure(root: Path, runtime: Path, n: int, settle: float, restarts: int = 3) -> dict:
    inbox, out = root / "inbox", root / "out"
    inbox.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (90, 120, 150)).save(buf, "JPEG")
    base = buf.getvalue()
    for i in range(n):  # bytes after EOI make each file distinct and still a valid JPEG
        (inbox / f"p{i:05}.jpg").write_bytes(base + str(i).encode())
    config = root / "config.yaml"
    config.write_text(
        f"daemon: {{settle_seconds: {settle}, workers: 2, tray: false}}\n"
        f"watch: [{{inbox: {inbox}}}]\n"
        "rules:\n  - name: thumb\n    pipeline: [{encode: png}]\n"
        f"    output: {out}/{{stem}}.{{ext}}\n"
    )
    # Hashes are cached only for files whose ctime is older than the racy window.
    _until(lambda: time.time_ns() - os.lstat(inbox / f"p{n - 1:05}.jpg").st_ctime_ns > RACY_NS, 10)
    env = _env(root, runtime)
    opens = root / "opens.log"
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(OPENLOG), env.get("PYTHONPATH")])),
        AMBERPIC_OPENLOG=str(opens),
        AMBERPIC_OPENLOG_UNDER=str(inbox),
    )
    sock = runtime / "amberpic" / "control.sock"

    first, t_first = _start(config, env, root), time.monotonic()
    try:
        if not _until(lambda: len(os.listdir(out)) >= n if out.exists() else False, 3600, 0.2):
            return {"error": "the first pass did not finish"}
        _until(lambda: _idle(sock), 120, 0.05)
        first_pass = time.monotonic() - t_first
    finally:
        _stop(first)
    opened_first = _opened(opens)
    opens.unlink(missing_ok=True)

    # Timed without the audit hook (it runs on every audited event); then counted with it.
    plain = {k: v for k, v in env.items() if not k.startswith("AMBERPIC_OPENLOG")}
    answers, ready = [], []
    for _ in range(restarts):
        t0 = time.monotonic()
        second = _start(config, plain, root)
        try:
            _until(lambda: _answers(sock), 60, 0.002)
            answers.append(round(time.monotonic() - t0, 3))
            _until(lambda: _idle(sock), 600, 0.002)
            ready.append(round(time.monotonic() - t0, 3))
        finally:
            _stop(second)
    # The same start over an empty inbox and journal: what start-up costs without the files.
    empty_root = root / "empty"
    (empty_root / "inbox").mkdir(parents=True)
    empty_config = empty_root / "config.yaml"
    empty_config.write_text(config.read_text().replace(str(inbox), str(empty_root / "inbox")))
    empty_env = {**plain, **_env(empty_root, runtime)}  # its own HOME and state
    baseline = []
    for _ in range(restarts):
        t0 = time.monotonic()
        proc = _start(empty_config, empty_env, empty_root)
        try:
            _until(lambda: _idle(sock), 60, 0.002)
            baseline.append(round(time.monotonic() - t0, 3))
        finally:
            _stop(proc)
    third = _start(config, env, root)
    try:
        _until(lambda: _idle(sock), 600, 0.002)
        opened = _opened(opens)
    finally:
        _stop(third)
    return {
        "files": n,
        "settle_seconds": settle,
        "first_pass_seconds": round(first_pass, 1),
        "first_pass_inbox_opens": opened_first,
        "restart_status_answers_seconds": answers,
        "restart_ready_seconds": ready,
        "restart_ready_median": sorted(ready)[len(ready) // 2],
        "restart_inbox_opens": opened,
        "empty_inbox_ready_seconds": baseline,
    }


def _start(config: Path, env: dict[str, str], root: Path) -> subprocess.Popen:
    log = open(root / "daemon.log", "a")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "amberpicd", "-c", str(config), "run", "--no-tray"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _answers(sock: Path) -> bool:
    try:
        return bool(request(sock, "status").get("ok"))
    except Exception:
        return False


def _idle(sock: Path) -> bool:
    try:
        s = request(sock, "status")
    except Exception:
        return False
    return bool(s.get("ok")) and s["queue"] == 0 and s["in_flight"] == 0


def _opened(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(not line.startswith("armed ") for line in log.read_text().splitlines())


if __name__ == "__main__":
    sys.exit(main())
