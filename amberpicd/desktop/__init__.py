"""The desktop around the daemon: ``session`` (the daemon's one entry point: tray and
notifications, given a command handle and a few settings), ``tray`` (the StatusNotifier icon
and its menu), ``notify`` (desktop notifications) and ``service_install`` (start at login).
Nothing here imports the daemon's service.
"""
