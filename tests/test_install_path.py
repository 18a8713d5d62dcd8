"""The README's first commands, run as written in a throwaway HOME: a fresh copy of the source,
the one-line install (venv from the system Python with --system-site-packages, pip install,
``~/.local/bin/amberpicd``) that runs the daemon on the embedded default, a photo dropped into
the inbox, its output; then the same installation without PyGObject (one log line saying what
to install) and ``install-service --now`` as the next line.

Slow: it builds and installs the package into a new venv (pip's cache keeps it offline once
the dependencies have been downloaded).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import images
import pytest
from daemonproc import wait_for
from desktopenv import XSession, need

from amberpicd.daemon.control import request

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def readme_blocks() -> list[str]:
    """The shell blocks of the README's first section, "Install and run"."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## ") + 1
    section = text[start : text.index("\n## ", start + 1)]
    assert section.startswith("## Install and run"), section[:40]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", section, re.S)]


def fresh_copy(dest: Path) -> Path:
    """What ``git clone`` gives: the tracked (and new, not ignored) files of this tree."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = REPO / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


class Shell:
    """A command line run by bash in its own session (so it can be stopped whole)."""

    def __init__(self, line: str, cwd: Path, env: dict[str, str], log: Path):
        self.log = log
        self._file = log.open("w")
        self.proc = subprocess.Popen(
            ["bash", "-c", line],
            cwd=cwd,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited with {self.proc.returncode}:\n{self.text()[-4000:]}")
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._file.close()


@pytest.fixture
def newcomer(tmp_path: Path):
    """A HOME with nothing in it, a minimal PATH, no desktop, and the real pip cache."""
    home = tmp_path / "home"
    home.mkdir()
    runtime = Path(tempfile.mkdtemp(prefix="apd-", dir="/tmp"))  # AF_UNIX path limit
    pip_cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "XDG_RUNTIME_DIR": str(runtime),
        "PIP_CACHE_DIR": pip_cache,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    shells: list[Shell] = []
    yield home, env, shells
    for shell in shells:
        shell.stop()
    shutil.rmtree(runtime, ignore_errors=True)


def test_readme_first_lines_install_run_and_process_a_photo(tmp_path: Path, newcomer):
    home, env, shells = newcomer
    clone, install, service, *_ = readme_blocks()
    # 1. "git clone URL amberpicd && cd amberpicd": here, a copy of this tree.
    assert re.fullmatch(r"git clone \S+ amberpicd && cd amberpicd", clone), clone
    source = fresh_copy(tmp_path / "amberpicd")

    # 2. The one line, as written: install, put on PATH, run on the embedded default.
    assert "--system-site-packages" in install and install.endswith("amberpicd run")
    first = Shell(install, source, env, tmp_path / "install.log")
    shells.append(first)
    wait_for(
        lambda: first.alive() and " watching " in first.text(), 600, "pip install, then the daemon"
    )
    log = first.text()
    assert "config: embedded default" in log
    assert "no tray icon: no display" in log  # headless here: said once, and it runs
    inbox = home / "Pictures" / "AmberPic" / "Inbox"
    assert inbox.is_dir()
    images.jpeg(tmp_path / "IMG_0042.jpg", (3000, 2000), gps=True)
    os.replace(tmp_path / "IMG_0042.jpg", inbox / "IMG_0042.jpg")
    out = home / "Pictures" / "AmberPic" / "Web" / "IMG_0042.webp"
    wait_for(out.exists, 60, "the photo's WebP")
    from PIL import Image

    with Image.open(out) as im:
        assert im.format == "WEBP" and max(im.size) == 2048

    # amberpicd is on PATH as ~/.local/bin/amberpicd, the venv's own.
    program = home / ".local" / "bin" / "amberpicd"
    venv = home / ".local" / "share" / "amberpicd" / "venv"
    assert program.resolve() == (venv / "bin" / "amberpicd").resolve()
    status = subprocess.run(
        [str(program), "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert "  config: embedded default" in status.stdout.splitlines()
    # The tray came with it: pystray and jeepney are dependencies, PyGObject is seen.
    probe = subprocess.run(
        # (importing pystray needs a display: find it, import the rest)
        [
            str(venv / "bin" / "python"),
            "-c",
            "import jeepney, gi, importlib.util as u; assert u.find_spec('pystray')",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    first.stop()

    # 3. Without PyGObject, on a desktop: it still runs, and one line says what to install.
    need("Xvfb", "trayer", "xdotool")
    no_gi = tmp_path / "no-gi"
    (no_gi / "gi").mkdir(parents=True)
    (no_gi / "gi" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    xs = XSession()
    try:
        desk_env = {**env, **xs.env, "PYTHONPATH": str(no_gi)}
        second = Shell(f"{program} run", source, desk_env, tmp_path / "no-gi.log")
        shells.append(second)
        wait_for(lambda: second.alive() and "tray icon:" in second.text(), 60, "the tray line")
        hints = [line for line in second.text().splitlines() if "apt install" in line]
        assert len(hints) == 1, second.text()
        assert "python3-gi" in hints[0] and "gir1.2-ayatanaappindicator3-0.1" in hints[0]
        assert "--system-site-packages" in hints[0]
        sock = Path(env["XDG_RUNTIME_DIR"]) / "amberpic" / "control.sock"
        assert request(sock, "status")["ok"]
        second.stop()
    finally:
        xs.close()

    # 4. The next line: install-service --now (a fake systemctl records what it is asked).
    assert service == "~/.local/bin/amberpicd install-service --now", service
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl.calls"
    fake = bin_dir / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'case "$*" in *show-environment*) echo "PATH=/usr/bin";; esac\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    svc_env = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", service], cwd=source, env=svc_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    unit = (home / ".config" / "systemd" / "user" / "amberpicd.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert str(venv) in exec_start and exec_start.endswith(" run")
    assert "enable amberpicd.service" in calls.read_text()
    assert "restart amberpicd.service" in calls.read_text()
