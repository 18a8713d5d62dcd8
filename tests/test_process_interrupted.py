"""``amberpicd process`` interrupted mid-run: Ctrl-C (SIGINT to the whole process group, as a
terminal sends it) and SIGTERM to the command alone. Its exit code says so, nothing of it
stays running (workers, the fork server), no temporary file stays behind, and a second run
finishes the rest: every output once, no ``-1`` copies."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonproc import wait_for
from PIL import Image

RULE = {
    "name": "web",
    "pipeline": [{"resize": {"width": 900, "height": 900, "mode": "fit"}}],
    "output": "out/{stem}-web.{ext}",
}
COUNT = 16


def command(tmp_path: Path) -> list[str]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"version": 1, "rules": [RULE]}))  # JSON is YAML
    names = sorted(p.name for p in (tmp_path / "in").iterdir())
    return [sys.executable, "-m", "amberpicd", "-c", str(cfg), "process", "-j", "2", "--json"] + [
        f"in/{n}" for n in names
    ]


def env(tmp_path: Path) -> dict:
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}


def session_alive(sid: int) -> list[str]:
    ps = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(sid)], capture_output=True)
    return [line for line in ps.stdout.decode().splitlines() if " Z" not in line]


def staged(tmp_path: Path) -> list[int]:
    db = sqlite3.connect(tmp_path / "state" / "amberpic" / "journal.db")
    try:
        return [r[0] for r in db.execute("SELECT id FROM jobs WHERE state = 'staged'")]
    finally:
        db.close()


@pytest.mark.parametrize("how", ["sigint-group", "sigterm-main", "sigkill-main"])
def test_an_interrupted_process_leaves_nothing_running_and_nothing_repeated(tmp_path, how):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    for n in range(COUNT):
        noise = Image.effect_noise((1800, 1400), 60 + n).convert("RGB")
        noise.save(tmp_path / "in" / f"p{n:02}.jpg", quality=95)
    # A command started in the background by a non-interactive shell (`.ci/run &`) inherits
    # SIGINT ignored, and so would the run: Ctrl-C from a terminal reaches a process whose
    # SIGINT is at its default. A handled signal is reset to the default at exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            command(tmp_path),
            cwd=tmp_path,
            env=env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        wait_for(lambda: any((tmp_path / "out").iterdir()), timeout=60, what="a first output")
        if how == "sigint-group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM if how == "sigterm-main" else signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    done_first = [json.loads(line) for line in out.decode().splitlines()]
    assert len(done_first) < COUNT, "control: the run was interrupted before its end"
    codes = {"sigint-group": 130, "sigterm-main": 143, "sigkill-main": -signal.SIGKILL}
    assert proc.returncode == codes[how], err.decode()
    assert b"Traceback" not in err, err.decode()
    deadline = time.monotonic() + 10
    while session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_alive(proc.pid) == [], "left running after the command ended"

    again = subprocess.run(
        command(tmp_path), cwd=tmp_path, env=env(tmp_path), capture_output=True, timeout=300
    )
    assert again.returncode == 0, again.stderr.decode()
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    # A job killed -9 while staged is taken over by the second run (begin_file: its temps
    # removed, the job superseded), so no temp waits for a recovery that would redo it.
    assert staged(tmp_path) == []
    assert outputs == [f"p{n:02}-web.jpg" for n in range(COUNT)], outputs
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        f"p{n:02}.jpg" for n in range(COUNT)
    ]
