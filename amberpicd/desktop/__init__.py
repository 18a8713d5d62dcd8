"""The desktop around the daemon: ``tray`` (the StatusNotifier icon and its menu),
``notify`` (desktop notifications) and ``service_install`` (start at login with systemd).
"""
