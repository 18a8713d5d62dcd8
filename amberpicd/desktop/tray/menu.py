"""What the tray shows, as plain data built from the daemon's ``status()`` dict.

Pure: no pystray, no Pillow, no I/O. ``build_menu`` returns frozen dataclasses whose
``actions`` say what a click does; the renderer (``tray.app``) only draws them and runs the
actions. Equal inputs give equal menus, so the renderer redraws only on a real change.
``status`` is None when no daemon answers (the stand-alone ``amberpicd tray``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from amberpicd.errors import printable

RECENT_ITEMS = 8  # jobs listed under "Recent activity"
LABEL_CHARS = 64  # longer labels are cut: menus as wide as the screen help nobody


# -- what a click does -------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A control command for the daemon, e.g. ``Command("enable", (("inbox", "/x"),))``."""

    cmd: str
    args: tuple[tuple[str, str], ...] = ()

    @property
    def kwargs(self) -> dict[str, str]:
        return dict(self.args)


@dataclass(frozen=True)
class OpenPath:
    """Open a folder or file with the desktop's default application (xdg-open)."""

    path: str


@dataclass(frozen=True)
class EditConfig:
    """Open the config file in the user's editor; None: there is none yet, write a starter."""

    path: str | None


@dataclass(frozen=True)
class CloseTray:
    """Close this tray icon only (the stand-alone tray; the daemon keeps running)."""


Action = Command | OpenPath | EditConfig | CloseTray


# -- what the menu holds -------------------------------------------------------------------
@dataclass(frozen=True)
class Separator:
    pass


SEPARATOR = Separator()


@dataclass(frozen=True)
class Item:
    text: str
    actions: tuple[Action, ...] = ()
    checked: bool | None = None  # None: not a checkbox
    enabled: bool = True
    default: bool = False  # the left-click action where the backend has one
    submenu: tuple[Entry, ...] = ()


Entry = Item | Separator


# -- state -----------------------------------------------------------------------------------
def icon_state(status: dict[str, Any] | None) -> str:
    """``idle``, ``working``, ``paused``, ``error`` or ``offline``: which icon to draw."""
    if status is None:
        return "offline"
    state = status.get("state", "idle")
    return {"busy": "working"}.get(state, state if state in ("idle", "paused", "error") else "idle")


def _waiting(status: dict[str, Any]) -> int:
    return int(status.get("queue", 0)) + int(status.get("in_flight", 0))


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def tooltip(status: dict[str, Any] | None) -> str:
    """One line saying what the daemon does now, e.g. ``Processing 12 files``."""
    if status is None:
        return "amberpicd is not running"
    waiting = _waiting(status)
    failed = int(status.get("failures_unseen", 0))
    config_error = (status.get("config") or {}).get("error")
    missing = [i["inbox"] for i in status.get("inboxes", ()) if i["enabled"] and not i["watching"]]
    journal = status.get("journal") or {}
    if journal.get("error"):  # files wait for it, whatever else is going on
        text = "Journal cannot be written (state folder)"
        return f"{text}; {_files(waiting)} waiting" if waiting else text
    if status.get("paused"):
        text = f"Paused, {_files(waiting)} waiting" if waiting else "Paused"
    elif waiting:
        text = f"Processing {_files(waiting)}"
    elif failed:
        return f"{failed} failed: see Recent activity"
    elif config_error:
        return "Config error: running on the previous config"
    elif journal.get("lost"):
        return "The journal was deleted or replaced; a new one was started"
    elif missing:
        return f"Inbox missing: {missing[0]}"
    else:
        watched = sum(1 for i in status.get("inboxes", ()) if i["enabled"])
        text = f"Idle, watching {watched} inbox{'es' if watched != 1 else ''}"
    return f"{text}; {failed} failed" if failed else text


# -- the menu --------------------------------------------------------------------------------
def _short(path: str, home: str | None) -> str:
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "~" + path[len(home.rstrip("/")) :]
    return path


def _cut(text: str) -> str:
    # A newline in an error must not break the menu, nor a bidi override or an escape
    # sequence in a file name disguise it.
    text = printable(" ".join(text.split()))
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _recent_item(entry: dict[str, Any]) -> Item:
    source = str(entry.get("source", ""))
    name = os.path.basename(source)
    folder = os.path.dirname(source) or "."
    status = entry.get("status")
    outputs = [str(p) for p in entry.get("outputs") or ()]
    if status == "failed":
        # The error already starts with the file name ("a.jpg: decode failed: ...").
        text = f"✗ {entry.get('error') or name + ': failed'}"
        return Item(_cut(text), (Command("seen"), OpenPath(folder)))
    if status == "done" and outputs:
        more = f" +{len(outputs) - 1}" if len(outputs) > 1 else ""
        # Open what was made, or take it back (the daemon's ``undo`` control command).
        actions = (
            Item(_cut(f"Open {os.path.basename(outputs[0])}"), (OpenPath(outputs[0]),)),
            Item("Undo", (Command("undo", (("path", source),)),)),
        )
        return Item(_cut(f"✓ {name} → {os.path.basename(outputs[0])}{more}"), submenu=actions)
    if status == "undone":
        return Item(_cut(f"↶ {name}: undone"), (OpenPath(folder),))
    if entry.get("error"):  # skipped, with the reason: "README.txt: not an image"
        return Item(_cut(f"○ {entry['error']}"), (OpenPath(folder),))
    why = "no rule matched" if status == "unmatched" else str(status or "skipped")
    return Item(_cut(f"○ {name}: {why}"), (OpenPath(folder),))


def _open_menu(label: str, plural: str, paths: list[str], home: str | None) -> Item:
    if not paths:
        return Item(f"{label} (none)", enabled=False)
    if len(paths) == 1:
        return Item(label, (OpenPath(paths[0]),))
    return Item(plural, submenu=tuple(Item(_cut(_short(p, home)), (OpenPath(p),)) for p in paths))


def build_menu(
    status: dict[str, Any] | None, *, standalone: bool = False, home: str | None = None
) -> tuple[Entry, ...]:
    """The tray menu for ``status`` (None: no daemon answers).

    ``standalone``: the menu of ``amberpicd tray``, which can close itself without stopping
    the daemon; in the daemon's own tray, Quit stops the daemon. ``home`` shortens paths
    under it to ``~/...``.
    """
    if status is None:
        return (
            Item(tooltip(None), enabled=False),
            SEPARATOR,
            Item("Edit config", (EditConfig(None),)),
            SEPARATOR,
            Item("Close tray", (CloseTray(),)),
        )
    recent = list(status.get("recent") or ())[-RECENT_ITEMS:][::-1]
    failures = [r for r in recent if r.get("status") == "failed"]
    unseen = int(status.get("failures_unseen", 0))
    if unseen and failures:
        # Clicking the status line (or left-clicking the icon) looks at the newest failure.
        folder = os.path.dirname(str(failures[0].get("source", ""))) or "."
        head = Item(tooltip(status), (Command("seen"), OpenPath(folder)), default=True)
    else:
        head = Item(tooltip(status), enabled=False)

    entries: list[Entry] = [head, SEPARATOR]
    paused = bool(status.get("paused"))
    entries.append(Item("Pause all", (Command("resume" if paused else "pause"),), checked=paused))
    inboxes = list(status.get("inboxes") or ())
    if inboxes:
        entries.append(SEPARATOR)
    for inbox in inboxes:
        path = str(inbox["inbox"])
        label = f"Watch {_short(path, home)}" + (
            "" if inbox.get("watching", True) else " (missing)"
        )
        cmd = "disable" if inbox["enabled"] else "enable"
        entries.append(
            Item(_cut(label), (Command(cmd, (("inbox", path),)),), checked=bool(inbox["enabled"]))
        )
    entries.append(SEPARATOR)
    paths = [str(i["inbox"]) for i in inboxes]
    entries.append(_open_menu("Open inbox folder", "Open inbox folders", paths, home))
    outputs = [str(p) for p in status.get("outputs") or ()]
    entries.append(_open_menu("Open output folder", "Open output folders", outputs, home))
    if recent:
        items: list[Entry] = [_recent_item(r) for r in recent]
        if unseen:
            items += [SEPARATOR, Item("Mark failures as seen", (Command("seen"),))]
        entries.append(Item("Recent activity", submenu=tuple(items)))
    else:
        entries.append(Item("Recent activity (none yet)", enabled=False))
    entries.append(SEPARATOR)
    config = status.get("config") or {}
    source = config.get("source")
    entries.append(Item("Reload config", (Command("reload"),)))
    entries.append(
        Item("Edit config", (EditConfig(None if source in (None, "embedded") else source),))
    )
    entries.append(SEPARATOR)
    if standalone:
        entries.append(Item("Stop amberpicd", (Command("stop"),)))
        entries.append(Item("Close tray", (CloseTray(),)))
    else:
        entries.append(Item("Quit amberpicd", (Command("stop"),)))
    return tuple(entries)
