"""``amberpicd process --json | head -1``: the reader goes away after the first line. The
work asked for is still done (every file, once, journalled), without a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

RULE = {
    "name": "web",
    "pipeline": [{"resize": {"width": 64, "height": 64, "mode": "fit"}}],
    "output": "{stem}-web.{ext}",
}
NAMES = [f"p{i}.jpg" for i in range(4)]


def run(tmp_path: Path, stdout) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"version": 1, "rules": [RULE]}))  # JSON is YAML
    return subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(cfg), "process", "--json", *NAMES],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )


def pictures(folder: Path) -> None:
    folder.mkdir()
    for n, name in enumerate(NAMES):
        Image.new("RGB", (200, 100), (40 * n, 0, 0)).save(folder / name)


def test_a_closed_stdout_still_processes_every_file(tmp_path):
    pictures(tmp_path / "closed")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write is EPIPE
    try:
        done = run(tmp_path / "closed", write)
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr, done.stderr
    assert "Broken pipe" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    for name in NAMES:
        assert (tmp_path / "closed" / name.replace(".jpg", "-web.jpg")).is_file(), name
    # journalled: a second run, read in full, has nothing left to do
    again = run(tmp_path / "closed", subprocess.PIPE)
    rows = [json.loads(line) for line in again.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["already"] * len(NAMES), again.stderr


def test_control_an_open_stdout_gets_every_line(tmp_path):
    pictures(tmp_path / "open")
    done = run(tmp_path / "open", subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(NAMES)
