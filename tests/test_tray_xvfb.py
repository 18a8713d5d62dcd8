"""The real tray on a real X server: Xvfb, trayer (an XEmbed system tray), a private session
bus, the real daemon. The icon must dock and show the right pixels, a right click must open
the menu, and choosing items (with the keyboard, as GTK menus allow) must change the daemon.

Set AMBERPICD_TRAY_SCREENSHOT=docs/tray.png to keep the README's screenshot of the menu.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, wait_for
from desktopenv import Geometry, XSession, need_modules, session

from amberpicd.desktop.tray.icons import FILL, GREY
from amberpicd.desktop.tray.menu import Command, Item, build_menu, tooltip

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
  notify: "off"
  tray: {tray}
watch:
  - inbox: {root}/home/Pictures/Inbox
  - inbox: {root}/home/Downloads/Camera
rules:
  - name: web
    pipeline: [{{resize: {{width: 64, height: 64}}}}, {{encode: webp}}]
    output: {root}/home/Pictures/Web/{{stem}}.{{ext}}
"""


class DesktopDaemon(DaemonProc):
    """The daemon on the test desktop, started with extra ``run`` arguments if asked."""

    def __init__(self, root: Path, env: dict[str, str], *, tray: bool = True, args=()):
        super().__init__(root, CONFIG.replace("{tray}", "true" if tray else "false"))
        self.env.update(env)
        self.run_args = tuple(args)
        # Under the daemon's HOME, as on a desktop: the menu shows them as ~/...
        self.inbox = root / "home" / "Pictures" / "Inbox"
        self.inbox2 = root / "home" / "Downloads" / "Camera"
        self.out = root / "home" / "Pictures" / "Web"
        for folder in (self.inbox, self.inbox2):
            folder.mkdir(parents=True)

    def menu(self, *, standalone: bool = False, offline: bool = False):
        """The menu the tray shows now, built as the tray builds it."""
        status = None if offline else self.status()
        return status, build_menu(status, standalone=standalone, home=self.env["HOME"])


@pytest.fixture
def desktop(tmp_path: Path):
    """``(xsession, env for amberpicd processes, file the fake xdg-open appends to)``."""
    with session() as (bus, xs):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        opened = tmp_path / "opened.txt"
        fake = bin_dir / "xdg-open"
        fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{opened}"\n')
        fake.chmod(0o755)
        env = {
            **xs.env,
            "DBUS_SESSION_BUS_ADDRESS": bus.address,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }
        env.pop("PYSTRAY_BACKEND", None)
        yield xs, env, opened


@pytest.fixture
def daemons():
    started: list[DaemonProc] = []
    yield started
    for d in started:
        d.close()


# -- helpers --------------------------------------------------------------------------------
def near(pixel, colour, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def icon_colour(xs: XSession, window: int, fy: float = 0.15) -> tuple[int, int, int]:
    """The icon's colour at ``fy`` of its height, on its middle column: by default the fill
    just inside the top of the disc."""
    g = xs.geometry(window)
    return xs.screenshot().getpixel((g.x + g.width // 2, g.y + int(g.height * fy)))


def docked(xs: XSession) -> int:
    return wait_for(xs.tray_icon, 20, "the tray icon to dock in trayer")


def in_sync(xs: XSession, icon: int, status: dict | None) -> bool:
    # GtkStatusIcon's title names the docked window; the tray sets it after the menu.
    return xs.title(icon) == tooltip(status)


def presses(entries, what: str | Command) -> int:
    """How many Down presses select the item labelled ``what`` (or doing it) in a fresh GTK
    menu, which skips separators and insensitive items."""
    n = 0
    for e in entries:
        if isinstance(e, Item) and e.enabled:
            n += 1
            if e.text == what or what in e.actions:
                return n
    raise LookupError(what)


def open_menu(xs: XSession, icon: int) -> list[Geometry]:
    xs.click(xs.geometry(icon).centre, button=3)
    return wait_for(xs.menus, 10, "the menu to open")


def choose(
    xs: XSession,
    icon: int,
    d: DesktopDaemon,
    what: str | Command,
    *,
    sub: str = "",
    standalone: bool = False,
    offline: bool = False,
) -> None:
    """Open the menu and activate the item labelled ``what`` or doing it (in submenu ``sub``,
    if given) as a user would with the keyboard."""
    status, entries = d.menu(standalone=standalone, offline=offline)
    wait_for(lambda: in_sync(xs, icon, status), 10, f"the tray to show {tooltip(status)!r}")
    open_menu(xs, icon)
    if sub:
        (submenu,) = [e for e in entries if isinstance(e, Item) and e.text == sub]
        # Right opens the submenu with its first item selected.
        keys = ["Down"] * presses(entries, sub) + ["Right"]
        keys += ["Down"] * (presses(submenu.submenu, what) - 1)
    else:
        keys = ["Down"] * presses(entries, what)
    xs.keys(*keys, "Return")
    wait_for(lambda: not xs.menus(), 10, "the menu to close")


def menu_is_drawn(shot, menu: Geometry) -> bool:
    """A light menu background with dark text on it."""
    box = shot.crop((menu.x, menu.y, menu.x + menu.width, menu.y + menu.height)).convert("L")
    data = box.tobytes()
    light = sum(1 for v in data if v > 200) / len(data)
    dark = sum(1 for v in data if v < 90)
    return light > 0.6 and dark > 200


# -- the daemon's own tray ------------------------------------------------------------------
def test_daemon_tray_docks_opens_its_menu_and_its_toggles_work(tmp_path: Path, desktop, daemons):
    need_modules("gi")  # the menu needs the gtk (or appindicator) backend
    xs, env, opened = desktop
    d = DesktopDaemon(tmp_path, env)
    daemons.append(d)
    d.start()
    wait_for(lambda: "tray icon: gtk backend" in d.logs(), 20, "the tray's log line")
    icon = docked(xs)
    wait_for(lambda: near(icon_colour(xs, icon), FILL["idle"]), 10, "the idle icon drawn")
    wait_for(lambda: in_sync(xs, icon, d.status()), 10, "the idle tooltip")
    assert xs.title(icon) == "Idle, watching 2 inboxes"

    # One good file and one broken: recent activity, and the error icon until looked at.
    images.jpeg(d.inbox / "holiday.jpg", (640, 480))
    (tmp_path / "broken.jpg").write_bytes(images.encoded(images.upright(64, 48), "JPEG")[:300])
    (tmp_path / "broken.jpg").rename(d.inbox / "broken.jpg")
    wait_for(lambda: len(d.status()["recent"]) == 2 and d.idle(), 30, "both files to finish")
    wait_for(lambda: near(icon_colour(xs, icon), FILL["error"]), 10, "the error icon")
    assert xs.title(icon) == "1 failed: see Recent activity"

    # Right click: the menu opens, drawn; open Recent activity for the README's picture.
    status = d.status()
    wait_for(lambda: in_sync(xs, icon, status), 10, "the tray to catch up")
    (menu,) = open_menu(xs, icon)
    # Mapped is not painted yet: wait for GTK to draw it.
    wait_for(lambda: menu_is_drawn(xs.screenshot(), menu), 10, "the menu drawn")
    xs.keys(*["Down"] * presses(build_menu(status), "Recent activity"), "Right")
    menus = wait_for(lambda: len(xs.menus()) == 2 and xs.menus(), 10, "the submenu")

    def drawn():
        shot = xs.screenshot()
        return shot if all(menu_is_drawn(shot, m) for m in menus) else None

    shot = wait_for(drawn, 10, "the submenu drawn")
    _keep_screenshot(shot, [*menus, xs.geometry(icon)], tmp_path)
    xs.keys("Escape", "Escape")
    wait_for(lambda: not xs.menus(), 10, "the menus to close")

    # Clicking the failure in Recent activity marks it seen and opens its folder.
    failed = "✗ " + status["recent"][-1]["error"]
    assert status["recent"][-1]["source"] == str(d.inbox / "broken.jpg")
    choose(xs, icon, d, failed, sub="Recent activity")
    wait_for(lambda: d.status()["failures_unseen"] == 0, 10, "the failure to be seen")
    wait_for(lambda: opened.exists() and str(d.inbox) in opened.read_text(), 10, "xdg-open")
    wait_for(lambda: near(icon_colour(xs, icon), FILL["idle"]), 10, "the idle icon again")

    # Pause all, then switch the second inbox off: the daemon's state follows.
    choose(xs, icon, d, "Pause all")
    wait_for(lambda: d.status()["paused"], 10, "pause through the menu")
    wait_for(lambda: near(icon_colour(xs, icon), GREY), 10, "the paused icon")
    choose(xs, icon, d, Command("disable", (("inbox", str(d.inbox2)),)))
    wait_for(lambda: not d.status()["inboxes"][1]["enabled"], 10, "inbox2 switched off")
    assert d.status()["inboxes"][0]["enabled"]

    # Quit stops the daemon cleanly.
    choose(xs, icon, d, "Quit amberpicd")
    assert d.proc.wait(20) == 0
    d.logfile.close()
    wait_for(lambda: xs.tray_icon() is None, 10, "the icon to go")

    # The toggles persist across a restart, and the icon shows it at once.
    d.start()
    status = d.status()
    assert status["paused"] and not status["inboxes"][1]["enabled"]
    icon = docked(xs)
    wait_for(lambda: near(icon_colour(xs, icon), GREY), 10, "the paused icon after restart")
    assert d.stop() == 0


def _keep_screenshot(shot, boxes: list[Geometry], tmp_path: Path) -> None:
    pad = 12
    left = max(min(b.x for b in boxes) - pad, 0)
    top = max(min(b.y for b in boxes) - pad, 0)
    right = min(max(b.x + b.width for b in boxes) + pad, shot.width)
    bottom = min(max(b.y + b.height for b in boxes) + pad, shot.height)
    picture = shot.crop((left, top, right, bottom))
    picture.save(tmp_path / "tray.png")
    target = os.environ.get("AMBERPICD_TRAY_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        picture.save(target, optimize=True)


# -- amberpicd tray, next to a daemon without one ------------------------------------------------
def test_standalone_tray_controls_a_running_daemon(tmp_path: Path, desktop, daemons):
    need_modules("gi")  # the menu needs the gtk (or appindicator) backend
    xs, env, opened = desktop
    d = DesktopDaemon(tmp_path, env, tray=False)
    daemons.append(d)
    d.start()
    wait_for(lambda: "no tray icon: daemon.tray is false" in d.logs(), 10, "the log line")
    log = open(tmp_path / "tray.log", "w")  # noqa: SIM115 - closed below
    tray = subprocess.Popen(
        [sys.executable, "-m", "amberpicd", "tray"], env=d.env, stdout=log, stderr=log
    )
    try:
        icon = docked(xs)
        choose(xs, icon, d, "Pause all", standalone=True)
        wait_for(lambda: d.status()["paused"], 10, "pause through the stand-alone tray")
        d.out.mkdir()  # (a missing one opens its nearest parent)
        choose(xs, icon, d, "Open output folder", standalone=True)
        expected = [str(d.out)]
        wait_for(lambda: opened.exists() and opened.read_text().split() == expected, 10, "xdg-open")

        # The daemon stops: the tray says so and stays, ready for the next one.
        assert d.stop() == 0
        wait_for(lambda: in_sync(xs, icon, None), 10, "the offline tooltip")
        wait_for(lambda: near(icon_colour(xs, icon, 0.05), GREY, 60), 10, "the offline ring")
        choose(xs, icon, d, "Close tray", standalone=True, offline=True)
        assert tray.wait(20) == 0
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
        log.close()
    text = (tmp_path / "tray.log").read_text()
    assert "tray icon: gtk backend" in text
    assert "Traceback" not in text


def test_without_pygobject_the_log_says_the_menu_is_lost(tmp_path: Path, desktop, daemons):
    xs, env, _ = desktop
    d = DesktopDaemon(tmp_path, {**env, "PYSTRAY_BACKEND": "xorg"})
    daemons.append(d)
    d.start()
    wait_for(lambda: "tray icon: xorg backend" in d.logs(), 20, "the tray's log line")
    assert "what you lose with it: the menu" in d.logs()
    # pystray's xorg backend makes its window (WM_CLASS instance "<name>SystemTrayIcon");
    # whether it docks is up to that backend, which loses that race now and then.
    find = lambda: xs.windows(classname="^amberpicdSystemTrayIcon$", visible=False)  # noqa: E731
    wait_for(find, 20, "its window")
    assert d.stop() == 0


def test_no_tray_flag_and_headless_runs_say_so(tmp_path: Path, desktop, daemons):
    _, env, _ = desktop
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    d = DesktopDaemon(tmp_path / "a", env, args=["--no-tray"])
    headless = {k: v for k, v in env.items() if k != "DISPLAY"}
    h = DesktopDaemon(tmp_path / "b", headless)
    daemons += [d, h]
    d.start()
    h.start()
    wait_for(lambda: "no tray icon: started with --no-tray" in d.logs(), 10, "--no-tray line")
    wait_for(lambda: "no tray icon: no display" in h.logs(), 10, "the headless line")
    assert d.stop() == 0 and h.stop() == 0
    for proc in (d, h):
        assert proc.logs().count("no tray icon") == 1


def test_daemon_tray_and_notifications_open_no_network_socket(tmp_path: Path, desktop, daemons):
    """The privacy tripwire (tests/nonet) over the daemon with its tray on an X display and
    notifications over D-Bus: files are processed, one fails, a notification is sent, the
    menu opens, and no process of the tree opens anything but a Unix socket."""
    need_modules("gi", "jeepney")
    from desktopenv import FakeNotificationService
    from test_torture_daemon import tripwire

    xs, env, _ = desktop
    log = tmp_path / "nonet.log"
    d = DesktopDaemon(tmp_path, {**env, **tripwire(log)})
    d.write_config(d.config.read_text().replace('notify: "off"', "notify: all"))
    daemons.append(d)
    service = FakeNotificationService(env["DBUS_SESSION_BUS_ADDRESS"])
    try:
        d.start()
        icon = docked(xs)
        staging = tmp_path / "staging"
        staging.mkdir()
        for i in range(10):
            images.jpeg(staging / f"n{i}.jpg", (64 + i, 48))
        (staging / "bad.jpg").write_bytes(images.encoded(images.upright(64, 48), "JPEG")[:300])
        for f in sorted(staging.iterdir()):
            f.rename(d.inbox / f.name)
        wait_for(lambda: len(d.history()) == 11 and d.idle(), 60, "11 files processed")
        wait_for(lambda: service.received, 20, "a notification over D-Bus")
        wait_for(lambda: in_sync(xs, icon, d.status()), 10, "the tray to catch up")
        assert open_menu(xs, icon)
        assert d.stop() == 0
    finally:
        service.close()
    lines = log.read_text().splitlines()
    assert [line for line in lines if line.startswith("VIOLATION")] == []
    armed = {
        int(line.split()[1].removeprefix("pid=")) for line in lines if line.startswith("armed")
    }
    assert d.proc.pid in armed, "the daemon ran without the tripwire"
