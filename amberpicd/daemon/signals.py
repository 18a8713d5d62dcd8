"""The daemon's signals: SIGTERM and SIGINT ask it to stop, SIGHUP to reload.

Handlers only set flags: a handler runs on the main thread between any two bytecodes, maybe
while it holds an Event's lock, and ``Event.set()`` there would deadlock (SIGTERM twice did).
The main loop looks at the flags at least every TICK. Touches nothing but signal dispositions.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def install(stop: Callable[[], None], reload: Callable[[], None]) -> dict:
    """Install the handlers (main thread only); returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_stop(signum, frame) -> None:
        stop()

    def on_hup(signum, frame) -> None:
        reload()

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    return previous


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
