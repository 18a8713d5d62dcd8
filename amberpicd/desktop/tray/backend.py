"""Which pystray backend draws the tray icon here, and what the user loses with it.

pystray has three on Linux: appindicator (StatusNotifierItem over D-Bus), gtk (an XEmbed
tray icon) and xorg (no menu at all). The first two need PyGObject. ``choose_backends``
orders them for the session; ``load_backend`` imports the first that loads, with our
fixes to pystray's Icon (tooltip, first title, tray-sized redraws, quiet shutdown).
``import pystray`` connects to the display (and raises without one): it happens here only,
when an icon will really be shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from amberpicd.desktop.senders import session_bus_address

log = logging.getLogger("amberpicd.desktop.tray")

NAME = "amberpicd"  # the icon's id, and the program name the tray host sees
INDICATOR_PACKAGE = "gir1.2-ayatanaappindicator3-0.1"
PYGOBJECT_PACKAGES = "python3-gi gir1.2-gtk-3.0 " + INDICATOR_PACKAGE
# Said whenever PyGObject is missing: what to install, and the venv's one condition.
PYGOBJECT_HINT = (
    f"sudo apt install {PYGOBJECT_PACKAGES} (a venv needs --system-site-packages to see it), "
    "then restart amberpicd"
)


def what_you_lose(backend: str, found: Mapping[str, bool]) -> str:
    """What the user goes without on ``backend``, said once in the log when it starts."""
    if backend == "appindicator":
        return (
            "little: left click opens the menu too (no default action), and most panels show "
            "no tooltip, so the menu's first line says what amberpicd is doing"
        )
    if backend == "gtk":
        text = (
            "nothing where the panel has an XEmbed system tray; GNOME Shell needs an extension "
            "for one, and StatusNotifier-only panels (most on Wayland) show no XEmbed icons"
        )
        if not found.get("indicator"):
            text += f"; for those, install the AppIndicator typelib (Debian: {INDICATOR_PACKAGE})"
        return text
    if backend == "xorg":
        return (
            "the menu: pystray's xorg backend has no menu and takes no clicks; use `amberpicd "
            f"pause|resume|status`, or for the menu: {PYGOBJECT_HINT}"
        )
    return "unknown: PYSTRAY_BACKEND chose it"


# -- which backend ---------------------------------------------------------------------------
def choose_backends(
    *,
    forced: str | None,
    gtk: bool,
    indicator: bool,
    sni_host: bool,
    x11: bool,
    wayland: bool,
) -> list[str]:
    """pystray backends to try, best first.

    ``gtk``/``indicator``: PyGObject with GTK 3 / the (Ayatana) AppIndicator typelib import;
    ``sni_host``: a StatusNotifierWatcher owns its name on the session bus; ``x11``/
    ``wayland``: DISPLAY/WAYLAND_DISPLAY are set. ``forced``: PYSTRAY_BACKEND, obeyed.
    """
    if forced:
        return [forced]
    order: list[str] = []
    if indicator and (sni_host or (wayland and not x11)):
        order.append("appindicator")
    if gtk and x11:
        order.append("gtk")
    if indicator and "appindicator" not in order:
        order.append("appindicator")  # registers once a StatusNotifier host starts
    if x11:
        order.append("xorg")
    return order


def probe(env: Mapping[str, str]) -> dict[str, bool]:
    """What this session offers, for ``choose_backends``. (GTK and GIO read the process
    environment; ``env`` only says whether there is a session bus to ask.)"""
    found = {"gtk": False, "indicator": False, "sni_host": False}
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk  # noqa: F401

        found["gtk"] = True
    except (ImportError, ValueError):
        return found
    for namespace in ("AyatanaAppIndicator3", "AppIndicator3"):
        try:
            gi.require_version(namespace, "0.1")
        except ValueError:
            continue
        found["indicator"] = True
        # Without a session bus, GIO would try to autolaunch one: don't ask.
        found["sni_host"] = session_bus_address(env) is not None and _sni_host()
        break
    return found


def _sni_host() -> bool:
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            GLib.Variant("(s)", ("org.kde.StatusNotifierWatcher",)),
            GLib.VariantType("(b)"),
            Gio.DBusCallFlags.NONE,
            1000,
            None,
        )
        return bool(reply.unpack()[0])
    except Exception as exc:  # GLib.Error: no session bus, mostly
        log.debug("no StatusNotifier host found: %s", exc)
        return False


def load_backend(env: Mapping[str, str]) -> tuple[type, Any, str, dict[str, bool]]:
    """``(Icon class, pystray module, backend name, probe())`` for the best backend here;
    ImportError saying why when there is none."""
    found = probe(env)
    order = choose_backends(
        forced=env.get("PYSTRAY_BACKEND") or None,
        x11=bool(env.get("DISPLAY")),
        wayland=bool(env.get("WAYLAND_DISPLAY")),
        **found,
    )
    if not order:
        if not found["gtk"]:
            raise ImportError(f"PyGObject is missing, and Wayland needs it: {PYGOBJECT_HINT}")
        raise ImportError("no display, or no toolkit pystray can use on it")
    if found["gtk"]:
        from gi.repository import GLib

        GLib.set_prgname(NAME)  # before GTK starts: the tray host shows this name
    errors = []
    try:
        import pystray
    except Exception as exc:  # pystray raises Xlib's errors, not only ImportError
        raise ImportError(f"pystray cannot start: {exc}") from exc
    for name in order:
        try:
            # pystray picks its backend once, at import; its per-backend modules are the
            # documented backends' implementations and can be loaded by name.
            module = __import__(f"pystray._{name}", fromlist=["Icon"])
        except Exception as exc:
            errors.append(f"{name}: {exc}")
            continue
        return _icon_class(module.Icon, name), pystray, name, found
    raise ImportError("no pystray backend loads: " + "; ".join(errors))


def _icon_class(base: type, backend: str) -> type:
    """pystray's Icon with a tooltip and the first title (gtk sets neither), tray-sized
    redraws, and a quiet shutdown."""

    class Icon(base):  # type: ignore[misc, valid-type]
        size_changed: Callable[[int], None] | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            status_icon = getattr(self, "_status_icon", None)  # gtk: a Gtk.StatusIcon
            if status_icon is not None:
                from gi.repository import GLib

                status_icon.connect("size-changed", self._on_size)
                GLib.idle_add(self._set_label)

        def _update_title(self) -> None:
            if getattr(self, "_status_icon", None) is None:
                super()._update_title()
                return
            from gi.repository import GLib

            GLib.idle_add(self._set_label)

        def _set_label(self) -> bool:
            # pystray's gtk backend sets the title only on changes, and no tooltip at all.
            self._status_icon.set_title(self.title)
            self._status_icon.set_tooltip_text(self.title)
            return False  # run once

        def _on_size(self, status_icon: Any, size: int) -> bool:
            if self.size_changed is not None and size > 0:
                self.size_changed(size)
            return False  # let GTK scale until the redrawn icon arrives

        def _finalize(self) -> None:
            # The GTK backends hide their last notification on the way out, which fails
            # when no notification service runs: nothing is lost, so say nothing.
            try:
                super()._finalize()
            except Exception as exc:
                log.debug("tray: %s backend shutdown: %s", backend, exc)

    return Icon
