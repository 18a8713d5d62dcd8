"""The tray's menu, tooltip and icon state, built from status dicts: no display needed."""

from __future__ import annotations

import sys

import pytest

from amberpicd.desktop.tray.backend import choose_backends, what_you_lose
from amberpicd.desktop.tray.menu import (
    SEPARATOR,
    CloseTray,
    Command,
    EditConfig,
    Item,
    OpenPath,
    build_menu,
    icon_state,
    tooltip,
)


def status(**over) -> dict:
    base = {
        "ok": True,
        "state": "idle",
        "paused": False,
        "queue": 0,
        "in_flight": 0,
        "inboxes": [
            {"inbox": "/home/u/In", "enabled": True, "watching": True, "recursive": False},
            {"inbox": "/srv/drop", "enabled": False, "watching": True, "recursive": True},
        ],
        "outputs": ["/home/u/Out"],
        "recent": [],
        "failures_unseen": 0,
        "config": {"source": "/home/u/.config/amberpic/config.yaml", "error": None},
        "pid": 1,
        "version": "0.1.0",
    }
    base.update(over)
    return base


def find(entries, text: str) -> Item:
    for e in entries:
        if isinstance(e, Item):
            if e.text == text:
                return e
            if e.submenu:
                try:
                    return find(e.submenu, text)
                except LookupError:
                    pass
    raise LookupError(text)


def texts(entries) -> list[str]:
    return ["---" if e is SEPARATOR else e.text for e in entries]


# -- tooltip and icon state ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("over", "text", "state"),
    [
        ({}, "Idle, watching 1 inbox", "idle"),
        ({"state": "busy", "queue": 10, "in_flight": 2}, "Processing 12 files", "working"),
        ({"state": "busy", "queue": 0, "in_flight": 1}, "Processing 1 file", "working"),
        ({"state": "paused", "paused": True}, "Paused", "paused"),
        ({"state": "paused", "paused": True, "queue": 3}, "Paused, 3 files waiting", "paused"),
        ({"state": "error", "failures_unseen": 2}, "2 failed: see Recent activity", "error"),
        (
            {"state": "busy", "queue": 5, "failures_unseen": 2},
            "Processing 5 files; 2 failed",
            "working",
        ),
        (
            {"state": "error", "config": {"source": "x", "error": "bad"}},
            "Config error: running on the previous config",
            "error",
        ),
        (
            {
                "state": "error",
                "inboxes": [{"inbox": "/gone", "enabled": True, "watching": False}],
            },
            "Inbox missing: /gone",
            "error",
        ),
        (
            {"state": "error", "queue": 4, "journal": {"error": "journal.db: disk full"}},
            "Journal cannot be written (state folder); 4 files waiting",
            "error",
        ),
        (
            {"state": "error", "journal": {"error": None, "lost": "journal.db was deleted"}},
            "The journal was deleted or replaced; a new one was started",
            "error",
        ),
    ],
)
def test_tooltip_says_what_it_does_now(over, text, state):
    s = status(**over)
    assert tooltip(s) == text
    assert icon_state(s) == state
    assert build_menu(s)[0].text == text  # the menu's first line says the same


def test_no_daemon_is_offline():
    assert icon_state(None) == "offline"
    assert tooltip(None) == "amberpicd is not running"
    menu = build_menu(None, standalone=True)
    assert find(menu, "Close tray").actions == (CloseTray(),)
    assert find(menu, "Edit config").actions == (EditConfig(None),)
    assert not menu[0].enabled


# -- the menu ----------------------------------------------------------------------------------
def test_layout_of_the_daemons_own_menu():
    menu = build_menu(status(), home="/home/u")
    assert texts(menu) == [
        "Idle, watching 1 inbox",
        "---",
        "Pause all",
        "---",
        "Watch ~/In",
        "Watch /srv/drop",
        "---",
        "Open inbox folders",
        "Open output folder",
        "Recent activity (none yet)",
        "---",
        "Reload config",
        "Edit config",
        "---",
        "Quit amberpicd",
    ]
    assert not menu[0].enabled and not menu[0].default
    assert find(menu, "Quit amberpicd").actions == (Command("stop"),)
    assert find(menu, "Reload config").actions == (Command("reload"),)
    assert find(menu, "Edit config").actions == (
        EditConfig("/home/u/.config/amberpic/config.yaml"),
    )
    assert find(menu, "Open output folder").actions == (OpenPath("/home/u/Out"),)
    inbox_menu = find(menu, "Open inbox folders").submenu
    assert [i.actions for i in inbox_menu] == [(OpenPath("/home/u/In"),), (OpenPath("/srv/drop"),)]


def test_pause_checkbox_toggles():
    running = find(build_menu(status()), "Pause all")
    assert running.checked is False and running.actions == (Command("pause"),)
    paused = find(build_menu(status(paused=True, state="paused")), "Pause all")
    assert paused.checked is True and paused.actions == (Command("resume"),)


def test_one_checkbox_per_inbox_enables_or_disables_it():
    menu = build_menu(status())
    on, off = find(menu, "Watch /home/u/In"), find(menu, "Watch /srv/drop")
    assert on.checked is True and on.actions == (Command("disable", (("inbox", "/home/u/In"),)),)
    assert off.checked is False and off.actions == (Command("enable", (("inbox", "/srv/drop"),)),)
    assert off.actions[0].kwargs == {"inbox": "/srv/drop"}


def test_a_missing_inbox_is_marked():
    s = status(inboxes=[{"inbox": "/gone", "enabled": True, "watching": False}])
    assert find(build_menu(s), "Watch /gone (missing)").checked is True


def test_standalone_menu_can_close_the_tray_or_stop_the_daemon():
    menu = build_menu(status(), standalone=True)
    assert texts(menu)[-2:] == ["Stop amberpicd", "Close tray"]
    assert find(menu, "Stop amberpicd").actions == (Command("stop"),)
    assert find(menu, "Close tray").actions == (CloseTray(),)


def test_embedded_config_edits_a_new_file():
    menu = build_menu(status(config={"source": "embedded", "error": None}))
    assert find(menu, "Edit config").actions == (EditConfig(None),)


def test_single_inbox_opens_directly_and_no_outputs_is_disabled():
    s = status(inboxes=[{"inbox": "/in", "enabled": True, "watching": True}], outputs=[])
    menu = build_menu(s)
    assert find(menu, "Open inbox folder").actions == (OpenPath("/in"),)
    assert find(menu, "Open output folder (none)").enabled is False


# -- recent activity ------------------------------------------------------------------------------
RECENT = [
    {"source": "/in/a.jpg", "status": "done", "outputs": ["/out/a.webp"], "error": None},
    {
        "source": "/in/sub/b.heic",
        "status": "failed",
        "outputs": [],
        "error": "b.heic: decode failed: truncated",
    },
    {"source": "/in/c.txt", "status": "unmatched", "outputs": [], "error": None},
    {"source": "/in/d.png", "status": "done", "outputs": ["/o/d.webp", "/o/d.jpg"], "error": None},
]


def test_recent_activity_newest_first_failures_marked():
    menu = build_menu(status(recent=RECENT, failures_unseen=1, state="error"))
    recent = find(menu, "Recent activity").submenu
    assert texts(recent) == [
        "✓ d.png → d.webp +1",
        "○ c.txt: no rule matched",
        "✗ b.heic: decode failed: truncated",
        "✓ a.jpg → a.webp",
        "---",
        "Mark failures as seen",
    ]
    # A done file offers to open the output or undo it (the daemon's undo command); a
    # failed one opens the original's folder (and counts as a look).
    assert recent[0].actions == ()
    assert [(i.text, i.actions) for i in recent[0].submenu] == [
        ("Open d.webp", (OpenPath("/o/d.webp"),)),
        ("Undo", (Command("undo", (("path", "/in/d.png"),)),)),
    ]
    assert recent[2].actions == (Command("seen"), OpenPath("/in/sub"))
    assert recent[-1].actions == (Command("seen"),)


def test_unseen_failure_makes_the_status_line_the_default_action():
    menu = build_menu(status(recent=RECENT, failures_unseen=1, state="error"))
    head = menu[0]
    assert head.enabled and head.default
    assert head.actions == (Command("seen"), OpenPath("/in/sub"))
    # Once seen: a plain label again, and nothing to mark.
    seen = build_menu(status(recent=RECENT))
    assert not seen[0].enabled and not seen[0].default
    assert "Mark failures as seen" not in texts(find(seen, "Recent activity").submenu)


def test_recent_activity_is_capped_and_labels_are_cut():
    long_error = "x.jpg: decode failed: " + "very long reason " * 20 + "\nsecond line"
    recent = [
        {"source": f"/in/{i}.jpg", "status": "failed", "outputs": [], "error": long_error}
        for i in range(20)
    ]
    items = find(build_menu(status(recent=recent)), "Recent activity").submenu
    assert len(items) == 8
    assert all(len(i.text) <= 64 and "\n" not in i.text for i in items)
    assert items[0].text.endswith("…")


def test_same_status_gives_an_equal_menu():
    # The renderer redraws only when this changes.
    assert build_menu(status(recent=RECENT)) == build_menu(status(recent=RECENT))
    assert build_menu(status()) != build_menu(status(paused=True))


def test_menu_module_needs_neither_pystray_nor_pillow():
    import subprocess

    code = (
        "import sys, amberpicd.desktop.tray.menu; "
        "sys.exit(any(m in sys.modules for m in ('pystray', 'PIL', 'gi')))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- backend choice ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("session", "order"),
    [
        # KDE, or GNOME with the AppIndicator extension: a StatusNotifier host.
        (dict(gtk=True, indicator=True, sni_host=True, x11=True), ["appindicator", "gtk", "xorg"]),
        # Xfce/MATE/LXDE and trayer: XEmbed tray, no StatusNotifier host.
        (dict(gtk=True, indicator=True, sni_host=False, x11=True), ["gtk", "appindicator", "xorg"]),
        # PyGObject without the AppIndicator typelib.
        (dict(gtk=True, indicator=False, sni_host=False, x11=True), ["gtk", "xorg"]),
        # No PyGObject in the venv: an icon without a menu.
        (dict(gtk=False, indicator=False, sni_host=False, x11=True), ["xorg"]),
        # Pure Wayland: only StatusNotifier can work.
        (dict(gtk=True, indicator=True, sni_host=False, x11=False, wayland=True), ["appindicator"]),
        (dict(gtk=False, indicator=False, sni_host=False, x11=False, wayland=True), []),
    ],
)
def test_backend_order(session, order):
    session.setdefault("wayland", False)
    assert choose_backends(forced=None, **session) == order


def test_forced_backend_is_obeyed():
    kw = dict(gtk=True, indicator=True, sni_host=True, x11=True, wayland=False)
    assert choose_backends(forced="xorg", **kw) == ["xorg"]


def test_the_log_says_what_each_backend_loses():
    assert "no menu" in what_you_lose("xorg", {})
    assert "python3-gi" in what_you_lose("xorg", {})
    assert "gir1.2-ayatanaappindicator3-0.1" in what_you_lose("gtk", {"indicator": False})
    assert "gir1.2-ayatanaappindicator3-0.1" not in what_you_lose("gtk", {"indicator": True})
    assert "tooltip" in what_you_lose("appindicator", {})


# -- opening folders and the config (no display needed) ------------------------------------------
def fake_program(folder, name: str, log) -> None:
    folder.mkdir(exist_ok=True)
    program = folder / name
    program.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{log}"\n')
    program.chmod(0o755)


def test_open_path_uses_xdg_open_and_the_nearest_existing_folder(tmp_path):
    from daemonproc import wait_for

    from amberpicd.desktop.tray.app import open_path

    log = tmp_path / "opened"
    fake_program(tmp_path / "bin", "xdg-open", log)
    env = {"PATH": str(tmp_path / "bin")}
    assert open_path(str(tmp_path / "gone" / "a.webp"), env)  # moved away since
    wait_for(lambda: log.exists() and log.read_text().split() == [str(tmp_path)], 10, "xdg-open")
    assert not open_path(str(tmp_path), {"PATH": str(tmp_path / "nothing")})


def test_edit_config_writes_a_starter_first_then_opens_it(tmp_path):
    from daemonproc import wait_for

    from amberpicd.desktop.tray.app import edit_config

    log = tmp_path / "edited"
    fake_program(tmp_path / "bin", "my-editor", log)
    env = {
        "PATH": str(tmp_path / "empty"),  # no xdg-open: $VISUAL is next
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "VISUAL": f"{tmp_path / 'bin' / 'my-editor'} --wait",
    }
    assert edit_config(None, env)
    target = tmp_path / "cfg" / "amberpic" / "config.yaml"
    assert "rules:" in target.read_text()
    expected = ["--wait", str(target)]
    wait_for(lambda: log.exists() and log.read_text().split() == expected, 10, "the editor")


def test_a_skipped_non_image_says_why_and_is_no_failure():
    skipped = {
        "source": "/in/README.txt",
        "status": "skipped",
        "outputs": [],
        "error": "README.txt: not an image",
    }
    s = status(recent=[skipped])
    assert icon_state(s) != "error"
    recent = find(build_menu(s), "Recent activity").submenu
    assert texts(recent) == ["○ README.txt: not an image"]
    assert recent[0].actions == (OpenPath("/in"),)


def test_recent_names_cannot_disguise_themselves():
    # A bidi override shows "photo.exe" as "photo.gpj" to the eye; an ESC could restyle text.
    recent = [
        {"source": "/in/photo\u202egpj.exe", "status": "done", "outputs": ["/o/a.webp"]},
        {"source": "/in/x.jpg", "status": "failed", "outputs": [], "error": "x\x1b[2J.jpg: bad"},
    ]
    items = find(build_menu(status(recent=recent)), "Recent activity").submenu
    labels = [i.text for i in items[:2]]
    assert sorted(labels) == ["✓ photo\\u202egpj.exe → a.webp", "✗ x\\x1b[2J.jpg: bad"]


def test_an_undone_file_is_listed_as_undone_with_no_undo_offered():
    recent = [{"source": "/in/a.jpg", "status": "undone", "outputs": [], "error": None}]
    (item,) = find(build_menu(status(recent=recent)), "Recent activity").submenu
    assert item.text == "↶ a.jpg: undone" and item.actions == (OpenPath("/in"),)
    assert not item.submenu
