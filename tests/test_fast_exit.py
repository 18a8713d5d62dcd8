"""The program's way out (``cli.main.entry``, the fork server's preload): past the exit
handlers without the interpreter's teardown, and still every exit code, every line of
output and every exit handler, in real interpreters."""

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,  # pipes: stdout is block-buffered, so a lost flush shows
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(TESTS), "XDG_STATE_HOME": str(tmp_path)},
    )


def config(tmp_path: Path, rules: list) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"version": 1, "rules": rules}))  # JSON is YAML
    return path


RULE = {
    "name": "web",
    "pipeline": [{"resize": {"width": 64, "height": 64, "mode": "fit"}}],
    "output": "{stem}-web.{ext}",
}


def entry(args: list[str], before: str = "") -> str:
    return (
        "import atexit, sys, threading, time\n"
        "from amberpicd.cli.main import entry\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        f"{before}\n"
        f"entry({args!r})\n"
    )


def test_entry_keeps_the_exit_code_the_output_and_the_exit_handlers(tmp_path):
    good = config(tmp_path, [RULE])
    done = python(entry(["check", "-c", str(good)]), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout  # written to a pipe, still there: flushed before the exit
    assert done.stdout.rstrip().endswith("exit handler ran")

    bad = config(tmp_path, [{**RULE, "pipeline": ["no_such_operation"]}])
    failed = python(entry(["check", "-c", str(bad)]), tmp_path)
    assert failed.returncode == 2
    assert "no_such_operation" in failed.stdout + failed.stderr
    assert "exit handler ran" in failed.stdout


def test_entry_waits_for_a_thread_that_is_not_a_daemon(tmp_path):
    good = config(tmp_path, [RULE])
    late = (
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n"
    )
    done = python(entry(["check", "-c", str(good)], late), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "thread finished" in done.stdout


def test_the_preload_ends_only_the_fork_server_early(tmp_path):
    """Imported anywhere else (a test, a tool), the preload leaves the exit alone."""
    done = python("import sys, amberpicd.workers.preload\nsys.exit(3)\n", tmp_path)
    assert done.returncode == 3, done.stderr


def test_a_process_run_through_the_entry_point_writes_and_journals(tmp_path):
    from PIL import Image

    Image.new("RGB", (200, 100), "red").save(tmp_path / "a.jpg")
    good = config(tmp_path, [RULE])
    done = _process_json(tmp_path, good)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["status"] == "done"
    with Image.open(tmp_path / "a-web.jpg") as out:
        assert out.size == (64, 32)
    again = _process_json(tmp_path, good)
    assert json.loads(again.stdout.splitlines()[0])["status"] == "already"  # journal durable


def _process_json(tmp_path, config_path) -> subprocess.CompletedProcess:
    """``amberpicd process --json a.jpg`` in ``tmp_path``, its journal in ``tmp_path/state``."""
    return subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(config_path), "process", "--json", "a.jpg"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )
