"""The systemd user unit, install-service / uninstall-service, and the daemon speaking
Type=notify to a real datagram socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from daemonproc import DaemonProc
from desktopenv import need

from amberpicd.desktop.service_install import (
    MARKER,
    SHIPPED_COMMAND,
    Installation,
    install,
    render_desktop_entry,
    render_unit,
    this_installation,
    uninstall,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "systemd" / "amberpicd.service"


def verify(unit: Path, home: Path) -> str:
    """``systemd-analyze --user verify``: its whole output (empty means clean) and exit 0."""
    need("systemd-analyze")
    runtime = Path(tempfile.mkdtemp(prefix="apd-rt-", dir="/tmp"))
    try:
        done = subprocess.run(
            ["systemd-analyze", "--user", "verify", str(unit)],
            env={"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(runtime)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_shipped_unit_is_the_template():
    assert SHIPPED.read_text() == render_unit(SHIPPED_COMMAND)


def test_shipped_unit_verifies_without_a_warning(tmp_path: Path):
    script = tmp_path / ".local" / "bin" / "amberpicd"  # where pipx puts it: %h/.local/bin
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert verify(SHIPPED, tmp_path) == ""


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's settings as systemd reads them: section -> key -> every value given,
    in order (comments are not settings; a repeated key adds to, or resets, the first)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_says_what_it_promises():
    # Settings, not wording: the promise "files never leave this device" is kept by the
    # address-family allowlist, which must be AF_UNIX alone (a second
    # RestrictAddressFamilies= line would widen it, so every value given is checked).
    unit = directives(SHIPPED.read_text())
    service = unit["Service"]
    assert service["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert service["Type"] == ["notify"]
    assert service["Restart"] == ["on-failure"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["SystemCallFilter"] == ["@system-service"]
    assert len(service["WatchdogSec"]) == 1 and service["WatchdogSec"][0].endswith("s")
    assert unit["Unit"]["PartOf"] == unit["Unit"]["After"] == ["graphical-session.target"]
    assert unit["Install"]["WantedBy"] == ["graphical-session.target"]
    # Control run of the parser: a comment mentioning a setting is not that setting.
    widened = SHIPPED.read_text() + "\n[Service]\n# RestrictAddressFamilies=AF_INET\n"
    assert directives(widened)["Service"]["RestrictAddressFamilies"] == ["AF_UNIX"]
    widened += "RestrictAddressFamilies=AF_INET\n"
    assert directives(widened)["Service"]["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET"]


# -- install / uninstall against a fake systemctl -------------------------------------------------
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$*" = "--user show-environment" ]; then
  if [ -n "$FAKE_NO_MANAGER" ]; then echo "Failed to connect to bus" >&2; exit 1; fi
  printf 'HOME=/home/u\\nPATH=/usr/bin:/bin\\n'
  exit 0
fi
if [ -n "$FAKE_FAIL" ]; then
  case "$*" in *"$FAKE_FAIL"*) echo "Unit file is masked." >&2; exit 1;; esac
fi
exit 0
"""


@pytest.fixture
def home(tmp_path: Path):
    """An env with a temporary XDG_CONFIG_HOME and a fake ``systemctl`` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(log=log))
    fake.chmod(0o755)
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
    }

    def calls() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    return env, tmp_path / "config", calls


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amberpicd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_install_now_writes_enables_and_starts(home, tmp_path: Path):
    env, config, calls = home
    env = {**env, "DISPLAY": ":7"}  # the session's display, unknown to the user manager
    done = cli("install-service", "--now", env=env)
    assert done.returncode == 0, done.stderr
    unit = config / "systemd" / "user" / "amberpicd.service"
    text = unit.read_text()
    assert MARKER in text
    expected = this_installation()
    assert f"ExecStart={expected.command[0]} run" in text.splitlines()
    assert calls() == [
        "--user show-environment",
        "--user import-environment DISPLAY",
        "--user daemon-reload",
        "--user enable amberpicd.service",
        "--user restart amberpicd.service",
    ]
    assert f"wrote {unit}" in done.stdout and "started" in done.stdout
    assert verify(unit, tmp_path / "home") == ""

    # Again: nothing changes on disk, and it says so.
    again = cli("install-service", env=env)
    assert again.returncode == 0 and f"unchanged: {unit}" in again.stdout
    assert calls()[-2:] == ["--user daemon-reload", "--user enable amberpicd.service"]

    # uninstall reverses it.
    gone = cli("uninstall-service", env=env)
    assert gone.returncode == 0, gone.stderr
    assert not unit.exists()
    assert calls()[-2:] == ["--user disable --now amberpicd.service", "--user daemon-reload"]


def test_config_path_goes_into_execstart(home, tmp_path: Path):
    env, config, _ = home
    cfg = tmp_path / "my config" / "100% amber.yaml"  # a space and a specifier character
    script = tmp_path / "venv dir" / "bin" / "amberpicd"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    lines: list[str] = []
    venv = Installation("venv", (str(script),))
    assert install(config=cfg, env=env, out=lines.append, installation=venv) == 0
    unit = config / "systemd" / "user" / "amberpicd.service"
    (exec_line,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    assert exec_line == f'ExecStart="{script}" -c "{tmp_path}/my config/100%% amber.yaml" run'
    assert verify(unit, tmp_path / "home") == ""  # quoting right, or the binary is not found


def test_no_user_manager_still_writes_the_unit_and_says_how(home):
    env, config, calls = home
    done = cli("install-service", "--now", env={**env, "FAKE_NO_MANAGER": "1"})
    assert done.returncode == 0, done.stderr
    assert (config / "systemd" / "user" / "amberpicd.service").exists()
    assert "systemctl --user enable --now amberpicd.service" in done.stdout
    assert calls() == ["--user show-environment"]  # nothing enabled behind the user's back


def test_without_systemd_an_autostart_entry(home, tmp_path: Path):
    env, config, _ = home
    empty = tmp_path / "empty"
    empty.mkdir()
    done = cli("install-service", env={**env, "PATH": str(empty)})
    assert done.returncode == 0, done.stderr
    entry = config / "autostart" / "amberpicd.desktop"
    text = entry.read_text()
    assert "systemd is not installed" in done.stdout and str(entry) in done.stdout
    assert f"Exec={this_installation().command[0]} run" in text.splitlines()
    assert "[Desktop Entry]" in text and not (config / "systemd").exists()
    gone = cli("uninstall-service", env={**env, "PATH": str(empty)})
    assert gone.returncode == 0 and not entry.exists()


def test_autostart_flag_and_a_failing_systemctl(home):
    env, config, calls = home
    lines: list[str] = []
    assert install(autostart=True, env=env, out=lines.append) == 0
    assert (config / "autostart" / "amberpicd.desktop").exists() and calls() == []
    failing = {**env, "FAKE_FAIL": "enable"}
    assert install(env=failing, out=lines.append) == 1
    assert any("enable amberpicd.service failed: Unit file is masked." in x for x in lines)


def test_uninstall_leaves_foreign_files_alone(home):
    env, config, calls = home
    unit = config / "systemd" / "user" / "amberpicd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/true\n")  # the user's own unit
    lines: list[str] = []
    assert uninstall(env=env, out=lines.append) == 1
    assert unit.exists() and calls() == []
    assert "not written by amberpicd install-service" in lines[0]
    unit.unlink()
    assert uninstall(env=env, out=lines.append) == 0
    assert lines[-1].startswith("nothing to remove")


def test_desktop_entry_quoting():
    text = render_desktop_entry(("/opt/my apps/amberpicd",), Path("/c/50%.yaml"))
    assert 'Exec="/opt/my apps/amberpicd" -c /c/50%%.yaml run' in text.splitlines()


def test_installation_kinds(tmp_path: Path):
    bin_dir = tmp_path / "pipx" / "venvs" / "amberpicd" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "amberpicd").write_text("#!/bin/sh\n")
    (bin_dir / "amberpicd").chmod(0o755)
    pipx = this_installation(str(bin_dir.parent), "/usr", "/x/python")
    assert pipx == Installation("pipx", (str(bin_dir / "amberpicd"),))
    source = this_installation(str(tmp_path / "venv"), "/usr", "/venv/bin/python")
    assert source == Installation("venv", ("/venv/bin/python", "-m", "amberpicd"))
    assert this_installation("/usr", "/usr", "/usr/bin/python3").kind == "system"


# -- Type=notify, end to end -----------------------------------------------------------------------
CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
rules:
  - name: web
    pipeline: [{{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def test_daemon_notifies_ready_status_watchdog_and_stopping(tmp_path: Path):
    address = Path(tempfile.mkdtemp(prefix="apd-notify-", dir="/tmp")) / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    receiver.settimeout(20)
    d = DaemonProc(tmp_path, CONFIG)
    d.env.update(NOTIFY_SOCKET=str(address), WATCHDOG_USEC="400000")  # ping every 0.2 s
    try:
        d.start(wait=False)
        first = receiver.recv(4096).decode()
        assert first.splitlines()[0] == "READY=1"
        assert first.splitlines()[1] == f"STATUS=watching {tmp_path}/inbox"
        assert d.status()["ok"]  # ready came once the inboxes were watched and serving
        pings = 0
        while pings < 3:
            pings += receiver.recv(4096) == b"WATCHDOG=1"
        assert d.stop() == 0
        receiver.settimeout(0)  # read what is queued, up to BlockingIOError
        last = []
        with contextlib.suppress(BlockingIOError):
            while True:
                last.append(receiver.recv(4096))
        assert b"STOPPING=1" in last
    finally:
        d.close()
        receiver.close()
        address.unlink()
        address.parent.rmdir()
