"""A private desktop for tests: a D-Bus session bus, a fake notification service, and an X
server (Xvfb) with an XEmbed system tray (trayer), screenshots and xdotool input."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from daemonproc import wait_for
from need import missing


def need(*programs: str) -> None:
    """Skip the test, saying which Debian package to install, when a program is missing."""
    packages = {
        "dbus-daemon": "dbus-daemon",
        "Xvfb": "xvfb",
        "trayer": "trayer",
        "xdotool": "xdotool",
        "notify-send": "libnotify-bin",
        "systemd-analyze": "systemd",
    }
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        names = ", ".join(f"{p} (Debian: {packages.get(p, p)})" for p in missing)
        missing(f"needs {names}; .ci/run installs them")


def need_modules(*modules: str) -> None:
    """Skip when a Python module is missing from this venv (.ci/run's venv has them all)."""
    hints = {
        "gi": "PyGObject: Debian's python3-gi in a venv made with --system-site-packages",
        "jeepney": "pip install jeepney (in the test extra)",
        "Xlib": "pip install python-xlib (a pystray dependency)",
    }
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing(f"needs the {module} module ({hints.get(module, module)}); .ci/run has it")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- D-Bus ------------------------------------------------------------------------------------
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SessionBus:
    """A private session bus; no service activation, so nothing starts behind our back."""

    def __init__(self) -> None:
        need("dbus-daemon")
        # AF_UNIX paths are limited to 108 bytes: the socket lives under /tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="apd-bus-", dir="/tmp"))
        config = self.dir / "bus.conf"
        config.write_text(BUS_CONFIG.format(dir=self.dir))
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        assert self.address.startswith("unix:"), self.address

    def close(self) -> None:
        _stop(self.proc)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Notification:
    app: str
    replaces: int
    summary: str
    body: str
    hints: dict
    actions: list = field(default_factory=list)
    id: int = 0


class FakeNotificationService:
    """Owns ``org.freedesktop.Notifications`` on ``bus`` and records each Notify call;
    ``click(id, key)`` is the user pressing a notification's action button."""

    def __init__(self, address: str) -> None:
        need_modules("jeepney")
        from jeepney import HeaderFields, MessageType, message_bus
        from jeepney.io.blocking import open_dbus_connection

        self._fields, self._types = HeaderFields, MessageType
        self.conn = open_dbus_connection(bus=address)
        self.conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications"))
        self.received: list[Notification] = []
        self._clicks: list[tuple[int, str]] = []  # emitted by the serving thread, which owns conn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from jeepney import new_error, new_method_return

        next_id = 0
        while not self._stop.is_set():
            while self._clicks:
                emit_notification_signals(self.conn, *self._clicks.pop(0))
            try:
                msg = self.conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            except OSError:
                return
            if msg.header.message_type != self._types.method_call:
                continue
            member = msg.header.fields.get(self._fields.member)
            if member == "Notify":
                app, replaces, _icon, summary, body, actions, hints, _timeout = msg.body
                next_id += 1
                shown = replaces or next_id
                self.received.append(
                    Notification(app, replaces, summary, body, hints, list(actions), shown)
                )
                reply = new_method_return(msg, "u", (shown,))
            elif member == "GetServerInformation":
                reply = new_method_return(msg, "ssss", ("fake", "amberpicd tests", "1", "1.2"))
            elif member == "GetCapabilities":
                reply = new_method_return(msg, "as", (["body", "actions"],))
            else:
                reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
            self.conn.send(reply)

    def click(self, shown: int, key: str) -> None:
        """Emit ActionInvoked then NotificationClosed (reason 2: dismissed), as a real
        service does when the user presses a button."""
        self._clicks.append((shown, key))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


def emit_notification_signals(conn, shown: int, key: str) -> None:
    """ActionInvoked + NotificationClosed from ``conn`` (the service, or an impostor)."""
    from jeepney import DBusAddress, new_signal

    where = DBusAddress("/org/freedesktop/Notifications", interface="org.freedesktop.Notifications")
    conn.send(new_signal(where, "ActionInvoked", "us", (shown, key)))
    conn.send(new_signal(where, "NotificationClosed", "uu", (shown, 2)))


# -- X ------------------------------------------------------------------------------------------
@dataclass
class Geometry:
    x: int
    y: int
    width: int
    height: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


class XSession:
    """Xvfb with trayer docked at the top right, like a panel with a system tray."""

    def __init__(self, width: int = 800, height: int = 600) -> None:
        need("Xvfb", "trayer", "xdotool")
        need_modules("Xlib")
        read, write = os.pipe()  # Xvfb picks a free display and writes its number here
        self.trayer: subprocess.Popen | None = None
        self.xvfb = subprocess.Popen(
            # -noreset: without it the server resets when its last client leaves, and refuses
            # connections meanwhile.
            ["Xvfb", "-displayfd", str(write), "-noreset", "-screen", "0", f"{width}x{height}x24"],
            pass_fds=(write,),
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        try:
            with open(read) as f:
                self.display = ":" + f.readline().strip()
            self.env = {"DISPLAY": self.display, "NO_AT_BRIDGE": "1", "GDK_BACKEND": "x11"}
            self._paint_background()
            self.trayer = subprocess.Popen(
                [
                    "trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                    "--height", "32", "--SetDockType", "true", "--transparent", "false",
                ],
                env={"PATH": "/usr/bin:/bin", **self.env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            wait_for(self._panel, 10, "trayer's panel")
        except BaseException:
            self.close()
            raise

    def _panel(self) -> bool:
        assert self.trayer is not None
        if self.trayer.poll() is not None:
            assert self.trayer.stderr is not None
            raise AssertionError(f"trayer exited: {self.trayer.stderr.read()}")
        return bool(self.windows(name="^panel$"))

    def _paint_background(self) -> None:
        # A desktop-like colour instead of black, for the README's screenshot.
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.display)
        try:
            screen = d.screen()
            colour = screen.default_colormap.alloc_color(0x3A00, 0x4A00, 0x5A00).pixel
            screen.root.change_attributes(background_pixel=colour)
            screen.root.clear_area()
            d.sync()
        finally:
            d.close()

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args],
            env={"PATH": "/usr/bin:/bin", **self.env},
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def windows(
        self, *, name: str | None = None, classname: str | None = None, visible: bool = True
    ) -> list[int]:
        how = ["--name", name] if name is not None else ["--classname", classname or ""]
        only = ["--onlyvisible"] if visible else []
        return [int(w) for w in self.xdotool("search", *only, *how).split()]

    def geometry(self, window: int) -> Geometry:
        found = self._geometry(window)
        if found is None:
            raise LookupError(f"window {window} is gone")
        return found

    def _geometry(self, window: int) -> Geometry | None:
        values = dict(
            line.split("=", 1)
            for line in self.xdotool("getwindowgeometry", "--shell", str(window)).splitlines()
            if "=" in line
        )
        if not values:  # the window went away meanwhile
            return None
        return Geometry(*(int(values[k]) for k in ("X", "Y", "WIDTH", "HEIGHT")))

    def title(self, window: int) -> str:
        return self.xdotool("getwindowname", str(window)).strip()

    def tray_icon(self, classname: str = "amberpicd") -> int | None:
        """The docked icon: a small window of ``classname`` inside the panel at the top."""
        for w in self.windows(classname=f"^{classname}$"):
            g = self._geometry(w)
            if g is not None and 0 <= g.y < 32 and g.width <= 48 and g.height <= 48:
                return w
        return None

    def menus(self, classname: str = "amberpicd") -> list[Geometry]:
        """Open popup menus of ``classname`` (on screen and bigger than an icon)."""
        found = []
        for w in self.windows(classname=f"^{classname}$"):
            g = self._geometry(w)
            if g is not None and g.x >= 0 and g.y >= 0 and g.height > 48:
                found.append(g)
        return found

    def click(self, point: tuple[int, int], button: int = 1) -> None:
        self.xdotool("mousemove", str(point[0]), str(point[1]), "click", str(button))

    def keys(self, *names: str) -> None:
        self.xdotool("key", "--delay", "60", *names)

    def screenshot(self):
        """The whole screen as a Pillow RGB image."""
        from PIL import Image
        from Xlib import X
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.display)
        try:
            root = d.screen().root
            g = root.get_geometry()
            raw = root.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xFFFFFFFF)
            return Image.frombytes("RGB", (g.width, g.height), raw.data, "raw", "BGRX")
        finally:
            d.close()

    def close(self) -> None:
        if self.trayer is not None:
            _stop(self.trayer)
            if self.trayer.stderr is not None:
                self.trayer.stderr.close()
        _stop(self.xvfb)


@contextlib.contextmanager
def session(*, x: bool = True):
    """A session bus and (with ``x``) an X session; yields ``(bus, xsession or None)``."""
    bus = SessionBus()
    xs = None
    try:
        xs = XSession() if x else None
        yield bus, xs
    finally:
        if xs is not None:
            xs.close()
        bus.close()
