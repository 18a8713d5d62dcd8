"""The daemon's signals: SIGTERM and SIGINT ask it to stop, SIGHUP to reload.

Handlers set flags and wake the main loop through a ``Waker``, a self-pipe: a handler runs
on the main thread between any two bytecodes, maybe while it holds an Event's lock, and
``Event.set()`` there would deadlock (SIGTERM twice did); a write to a non-blocking pipe
takes no lock. So a stop is seen at once, not at the main loop's next tick. Touches nothing
but signal dispositions and the Waker's own pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import weakref
from collections.abc import Callable


class Waker:
    """An Event that a signal handler may set: ``set`` writes a byte to a non-blocking pipe
    (no lock, so safe in a handler and from any thread), ``wait`` selects on it."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = weakref.finalize(self, _close, self._read, self._write)

    def set(self) -> None:
        # A full pipe is already set; a closed one has nobody left to wake.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")

    def wait(self, timeout: float | None = None) -> bool:
        """True once set (until cleared), False after ``timeout`` seconds."""
        readable, _, _ = select.select([self._read], [], [], timeout)
        return bool(readable)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        self._closed()


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


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
