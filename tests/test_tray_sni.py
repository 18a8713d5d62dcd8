"""The tray through StatusNotifier, as KDE Plasma, GNOME's AppIndicator extension and most
Wayland bars show it: the real daemon under Xvfb on a private session bus, with a real
StatusNotifierWatcher (``status-notifier-watcher``) and a real host
(``gtk-sni-tray-standalone``). Everything the test knows about the icon it learns over
D-Bus, as a panel would: the item registers with the watcher, its menu (com.canonical.dbusmenu)
has the entries the tray builds, and a "clicked" event on "Pause all" pauses the daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, wait_for
from desktopenv import SessionBus, _stop, need, need_modules

from amberpicd.desktop.tray.menu import Item, build_menu

WATCHER = "org.kde.StatusNotifierWatcher"
SNI = "org.kde.StatusNotifierItem"
DBUSMENU = "com.canonical.dbusmenu"

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
  notify: off
watch:
  - inbox: {root}/home/Pictures/Inbox
rules:
  - name: web
    pipeline: [{{resize: {{width: 64, height: 64}}}}, {{encode: webp}}]
    output: {root}/home/Pictures/Web/{{stem}}.{{ext}}
"""


def need_sni() -> None:
    for program, package in (
        ("status-notifier-watcher", "haskell-status-notifier-item-utils"),
        ("gtk-sni-tray-standalone", "haskell-gtk-sni-tray-utils"),
    ):
        if shutil.which(program) is None:
            pytest.skip(f"needs {program} (Debian: {package}); .ci/run installs it")


class SNIDesktop:
    """Xvfb, a session bus, a StatusNotifierWatcher and a StatusNotifier host (a panel)."""

    def __init__(self) -> None:
        need("Xvfb", "dbus-daemon")
        need_sni()
        need_modules("gi", "jeepney")
        from jeepney.io.blocking import open_dbus_connection

        self.procs: list[subprocess.Popen] = []
        self.bus = SessionBus()
        try:
            read, write = os.pipe()
            self._start(
                ["Xvfb", "-displayfd", str(write), "-noreset", "-screen", "0", "800x600x24"],
                pass_fds=(write,),
            )
            os.close(write)
            with open(read) as f:
                display = ":" + f.readline().strip()
            self.env = {
                "DISPLAY": display,
                "DBUS_SESSION_BUS_ADDRESS": self.bus.address,
                "NO_AT_BRIDGE": "1",
                "GDK_BACKEND": "x11",
            }
            self.conn = open_dbus_connection(bus=self.bus.address)
            self._start(["status-notifier-watcher"], env=self.env)
            wait_for(lambda: self._has_owner(WATCHER), 20, "the StatusNotifierWatcher")
            self._start(["gtk-sni-tray-standalone", "--top"], env=self.env)
            wait_for(
                lambda: self.watcher_property("IsStatusNotifierHostRegistered"),
                20,
                "the StatusNotifier host to register",
            )
        except BaseException:
            self.close()
            raise

    def _start(self, argv: list[str], **kwargs) -> None:
        env = kwargs.pop("env", {})
        self.procs.append(
            subprocess.Popen(
                argv,
                env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **kwargs,
            )
        )

    # -- D-Bus, as a panel asks ----------------------------------------------------------
    def call(self, name: str, path: str, interface: str, method: str, sig=None, body=()):
        from jeepney import DBusAddress, MessageType, new_method_call

        address = DBusAddress(path, bus_name=name, interface=interface)
        reply = self.conn.send_and_get_reply(new_method_call(address, method, sig, body))
        if reply.header.message_type == MessageType.error:
            raise RuntimeError(f"{interface}.{method}: {reply.body}")
        return reply.body

    def get(self, name: str, path: str, interface: str, prop: str):
        body = self.call(
            name, path, "org.freedesktop.DBus.Properties", "Get", "ss", (interface, prop)
        )
        return body[0][1]  # (signature, value)

    def _has_owner(self, name: str) -> bool:
        return self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            (name,),
        )[0]

    def watcher_property(self, prop: str):
        return self.get(WATCHER, "/StatusNotifierWatcher", WATCHER, prop)

    def items(self) -> list[str]:
        return list(self.watcher_property("RegisteredStatusNotifierItems"))

    def item_path(self, service: str) -> str:
        """Where ``service`` exports its StatusNotifierItem: an entry may be a bus name
        alone (this watcher) or name + path; find the object by introspection."""
        if "/" in service:
            return "/" + service.split("/", 1)[1]
        return self._find(service.split("/")[0], "/")

    def _find(self, name: str, path: str) -> str | None:
        xml = self.call(name, path, "org.freedesktop.DBus.Introspectable", "Introspect")[0]
        tree = ET.fromstring(xml)
        if any(i.get("name") == SNI for i in tree.findall("interface")):
            return path
        for node in tree.findall("node"):
            found = self._find(name, f"{path.rstrip('/')}/{node.get('name')}")
            if found:
                return found
        return None

    def close(self) -> None:
        if hasattr(self, "conn"):
            self.conn.close()
        for proc in reversed(self.procs):
            _stop(proc)
        self.bus.close()


def layout_entries(layout) -> list[dict]:
    """The top level of a dbusmenu GetLayout answer: ``[{id, label, ...props}]``."""
    _revision, (_root_id, _props, children) = layout
    entries = []
    for _signature, (item_id, props, _sub) in children:
        entries.append({"id": item_id, **{k: v[1] for k, v in props.items()}})
    return entries


@pytest.fixture
def sni(tmp_path: Path):
    desk = SNIDesktop()
    daemons: list[DaemonProc] = []
    try:
        yield desk, daemons
    finally:
        for d in daemons:
            d.close()
        desk.close()


def test_statusnotifier_item_registers_its_menu_has_the_entries_and_pause_works(
    tmp_path: Path, sni
):
    desk, daemons = sni
    d = DaemonProc(tmp_path, CONFIG)
    d.env.update(desk.env)
    d.env.pop("PYSTRAY_BACKEND", None)  # amberpicd must choose appindicator itself
    inbox = tmp_path / "home" / "Pictures" / "Inbox"
    inbox.mkdir(parents=True)
    daemons.append(d)
    d.start()
    wait_for(lambda: "tray icon: appindicator backend" in d.logs(), 20, "the tray's log line")

    # The item registers with the watcher, under its own name and with amberpicd's title.
    (service,) = wait_for(desk.items, 20, "the item to register with the watcher")
    name = service.split("/")[0]
    path = desk.item_path(service)
    assert path is not None, f"{service} exports no {SNI}"
    assert desk.get(name, path, SNI, "Id") == "amberpicd"
    assert desk.get(name, path, SNI, "Status") == "Active"
    wait_for(
        lambda: desk.get(name, path, SNI, "Title") == "Idle, watching 1 inbox", 10, "the title"
    )

    # Its menu has the entries the tray builds from the daemon's status.
    menu_path = desk.get(name, path, SNI, "Menu")

    def entries() -> list[dict]:
        layout = desk.call(name, menu_path, DBUSMENU, "GetLayout", "iias", (0, -1, []))
        return layout_entries(layout)

    want = [e.text for e in build_menu(d.status(), home=d.env["HOME"]) if isinstance(e, Item)]
    shown = wait_for(
        lambda: [e["label"] for e in entries() if "label" in e] == want and entries(),
        10,
        "the menu to match the daemon's status",
    )
    assert {"Pause all", "Watch ~/Pictures/Inbox", "Reload config", "Quit amberpicd"} <= set(want)
    (pause,) = [e for e in shown if e.get("label") == "Pause all"]
    assert pause["toggle-type"] == "checkmark" and pause["toggle-state"] == 0

    # A panel's click on "Pause all" pauses the daemon, and the checkbox follows.
    desk.call(name, menu_path, DBUSMENU, "Event", "isvu", (pause["id"], "clicked", ("i", 0), 0))
    wait_for(lambda: d.status()["paused"], 10, "the daemon to pause")
    wait_for(
        lambda: any(
            e.get("label") == "Pause all" and e.get("toggle-state") == 1 for e in entries()
        ),
        10,
        "the checkbox ticked",
    )
    wait_for(
        lambda: desk.get(name, path, SNI, "Title").startswith("Paused"), 10, "the paused title"
    )
    # Paused means paused: a photo dropped now waits.
    images.jpeg(inbox / "a.jpg", (640, 480))
    wait_for(lambda: d.status()["queue"] >= 1, 10, "the photo to wait in the queue")
    assert not (tmp_path / "home" / "Pictures" / "Web").exists()
