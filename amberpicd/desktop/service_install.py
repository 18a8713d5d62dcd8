"""``amberpicd install-service`` / ``uninstall-service``: start the daemon at login.

With systemd: a user unit in ``$XDG_CONFIG_HOME/systemd/user`` whose ExecStart runs this very
installation (a venv's, pipx's or the system's ``amberpicd``), enabled with ``systemctl
--user`` when a user manager answers; without one the unit is still written, and we say how
to enable it. Without systemd, or with ``--autostart`` for sessions that never start
``graphical-session.target``: an XDG autostart entry. Every file written carries ``MARKER``,
and uninstall removes only files that do.

The unit template lives here, once: ``systemd/amberpicd.service`` in the source tree is
``render_unit(SHIPPED_COMMAND)``, and a test keeps the two equal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from amberpicd.paths import config_dir

UNIT = "amberpicd.service"
TARGET = "graphical-session.target"
DESKTOP_ENTRY = "amberpicd.desktop"
MARKER = "# Written by `amberpicd install-service`; `amberpicd uninstall-service` removes it."
SHIPPED_COMMAND = ("%h/.local/bin/amberpicd",)  # pipx and `pip install --user` put it there
SYSTEMCTL_TIMEOUT = 30.0
# Set by the desktop session; a user manager started before the session may lack them.
SESSION_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS")

UNIT_TEMPLATE = """\
# amberpicd as a systemd user service, started with the graphical session so that its
# tray icon has a display.
#
# Files never leave this device: amberpicd has no network code, and this unit forbids every
# address family but AF_UNIX (its control socket, D-Bus, the display), enforced by seccomp
# for user services too. (IPAddressDeny= is not: user managers have no cgroup BPF.)
{marker}[Unit]
Description=amberpicd: private local image processing (files never leave this device)
PartOf={target}
After={target}

[Service]
Type=notify
ExecStart={exec_start}
ExecReload=kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
WatchdogSec=60s
TimeoutStopSec=30s
UMask=0077
# Hardening that works in user units (seccomp based, no user namespaces needed).
RestrictAddressFamilies=AF_UNIX
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy={target}
"""

DESKTOP_TEMPLATE = """\
{marker}
[Desktop Entry]
Type=Application
Name=amberpicd
Comment=Private local image processing (files never leave this device)
Exec={exec_line}
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
"""


# -- what to run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Installation:
    kind: str  # venv | pipx | system
    command: tuple[str, ...]  # runs amberpicd (append "run")


def this_installation(
    prefix: str = sys.prefix, base_prefix: str = sys.base_prefix, executable: str = sys.executable
) -> Installation:
    """How this copy of amberpicd is installed, and the command that runs it."""
    kind = "pipx" if "pipx" in Path(prefix).parts else "venv"
    if prefix == base_prefix:
        kind = "system"
    script = Path(prefix) / "bin" / "amberpicd"
    if script.is_file() and os.access(script, os.X_OK):
        return Installation(kind, (str(script),))
    return Installation(kind, (executable, "-m", "amberpicd"))  # e.g. run from a source tree


def _systemd_word(word: str) -> str:
    # % starts a specifier and $ a variable in ExecStart: double them; quote spaces.
    word = word.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def _desktop_word(word: str) -> str:
    # The desktop entry spec: quote reserved characters; escape " ` $ \ inside; % is %%.
    if re.search(r"[\s\"'\\><~|&;$*?#()`]", word):
        word = '"' + re.sub(r'(["`$\\])', r"\\\1", word) + '"'
        word = word.replace("\\", "\\\\")  # and the string type escapes backslashes again
    return word.replace("%", "%%")


def exec_args(command: Sequence[str], config: Path | None) -> list[str]:
    return [*command, *(["-c", str(config)] if config else []), "run"]


def render_unit(command: Sequence[str], config: Path | None = None, *, marker: bool = False) -> str:
    """The user unit text running ``command`` (plus ``-c config``) ``run``."""
    args = exec_args(command, config)
    # The shipped unit's %h is a specifier on purpose: keep it as is.
    words = [args[0] if args[0].startswith("%h/") else _systemd_word(args[0])]
    words += [_systemd_word(a) for a in args[1:]]
    return UNIT_TEMPLATE.format(
        marker=MARKER + "\n" if marker else "", target=TARGET, exec_start=" ".join(words)
    )


def render_desktop_entry(command: Sequence[str], config: Path | None = None) -> str:
    exec_line = " ".join(_desktop_word(a) for a in exec_args(command, config))
    return DESKTOP_TEMPLATE.format(marker=MARKER, exec_line=exec_line)


# -- where -------------------------------------------------------------------------------------
def unit_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``)."""
    return config_dir(env).parent / "systemd" / "user"


def autostart_file(env: Mapping[str, str] = os.environ) -> Path:
    return config_dir(env).parent / "autostart" / DESKTOP_ENTRY


def _write(path: Path, text: str) -> bool:
    """Write ``text`` atomically; False when the file already says exactly that."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
    return True


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text()
    except OSError:
        return False


# -- systemctl -------------------------------------------------------------------------------
class Systemctl:
    """``systemctl --user``, or None-like when systemd is not installed."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.program = shutil.which("systemctl", path=env.get("PATH"))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.program is not None
        try:
            return subprocess.run(
                [self.program, "--user", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=SYSTEMCTL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", "timed out")

    def manager_environment(self) -> dict[str, str] | None:
        """The user manager's environment; None when no user manager answers."""
        if self.program is None:
            return None
        done = self("show-environment")
        if done.returncode != 0:
            return None
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


# -- install / uninstall ---------------------------------------------------------------------
def install(
    *,
    now: bool = False,
    autostart: bool = False,
    config: Path | None = None,
    env: Mapping[str, str] = os.environ,
    out: Callable[[str], None] = print,
    installation: Installation | None = None,
) -> int:
    """Install the unit (or autostart entry); exit status 0 unless a systemctl call failed."""
    installation = installation or this_installation()
    systemctl = Systemctl(env)
    if autostart or systemctl.program is None:
        return _install_autostart(installation, config, env, out, systemd=systemctl.program)

    unit = unit_dir(env) / UNIT
    changed = _write(unit, render_unit(installation.command, config, marker=True))
    exec_start = " ".join(exec_args(installation.command, config))
    out(f"{'wrote' if changed else 'unchanged:'} {unit} ({installation.kind}: {exec_start})")
    manager = systemctl.manager_environment()
    if manager is None:
        out("no systemd user manager answers here, so the unit is not enabled yet. In your")
        out("desktop session, run:")
        out(f"  systemctl --user daemon-reload && systemctl --user enable --now {UNIT}")
        return 0
    steps: list[tuple[str, ...]] = [("daemon-reload",), ("enable", UNIT)]
    if now:
        missing = [v for v in SESSION_VARIABLES if env.get(v) and v not in manager]
        if missing:  # else the service would start without a display: no tray icon
            steps.insert(0, ("import-environment", *missing))
        steps.append(("restart", UNIT))  # starts it, or restarts it on the new unit
    for step in steps:
        done = systemctl(*step)
        if done.returncode != 0:
            out(f"systemctl --user {' '.join(step)} failed: {done.stderr.strip()}")
            return 1
        out(f"systemctl --user {' '.join(step)}")
    if now:
        out(f"started; see it with: systemctl --user status {UNIT}")
    else:
        out("enabled: it starts with your next graphical session")
        out(f"to start it now: systemctl --user start {UNIT}")
    out(f"If your session never starts {TARGET} (systemctl --user is-active {TARGET}),")
    out("use `amberpicd install-service --autostart` instead.")
    return 0


def _install_autostart(
    installation: Installation,
    config: Path | None,
    env: Mapping[str, str],
    out: Callable[[str], None],
    *,
    systemd: str | None,
) -> int:
    entry = autostart_file(env)
    changed = _write(entry, render_desktop_entry(installation.command, config))
    if systemd is None:
        out("systemd is not installed here: amberpicd will start at login through an XDG")
        out("autostart entry instead, which desktop sessions (GNOME, KDE, Xfce, ...) run.")
    out(f"{'wrote' if changed else 'unchanged:'} {entry}")
    out("It starts amberpicd at your next login; to start it now: amberpicd run &")
    out("Window managers without XDG autostart: add `amberpicd run &` to your session's")
    out("start-up file (e.g. ~/.xsession or your window manager's autostart).")
    return 0


def uninstall(*, env: Mapping[str, str] = os.environ, out: Callable[[str], None] = print) -> int:
    """Remove what ``install`` wrote (files with ``MARKER`` only)."""
    unit = unit_dir(env) / UNIT
    entry = autostart_file(env)
    status, found = 0, False
    if unit.exists():
        found = True
        if not _ours(unit):
            out(f"{unit} was not written by amberpicd install-service; left alone")
            status = 1
        else:
            systemctl = Systemctl(env)
            manager = systemctl.manager_environment()
            if manager is not None:
                done = systemctl("disable", "--now", UNIT)
                out(f"systemctl --user disable --now {UNIT}")
                if done.returncode != 0:
                    out(f"  failed: {done.stderr.strip()}")
                    status = 1
            wants = unit_dir(env) / f"{TARGET}.wants" / UNIT
            if wants.is_symlink():  # enabled while no manager answers now: unlink by hand
                wants.unlink()
            unit.unlink()
            out(f"removed {unit}")
            if manager is not None:
                systemctl("daemon-reload")
                out("systemctl --user daemon-reload")
    if entry.exists():
        found = True
        if _ours(entry):
            entry.unlink()
            out(f"removed {entry}")
        else:
            out(f"{entry} was not written by amberpicd install-service; left alone")
            status = 1
    if not found:
        out("nothing to remove: no amberpicd unit or autostart entry is installed")
    return status
