"""What watchdog needs around it: safe handlers, watch upkeep, and its loggers.

:class:`SafeHandler` keeps a failing callback from ending watchdog's dispatcher thread;
:func:`alive` and :func:`unschedule` look after watches. Watchdog only logs an inotify queue
overflow: :class:`WatchdogLogs` turns that log line into a callback, and drops the noise
watchdog makes while shutting down.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable

import watchdog.events as ev
from watchdog.observers.api import BaseObserver, ObservedWatch

log = logging.getLogger(__name__)

_WATCHDOG_LOGGER = "watchdog.observers.inotify_c"


class SafeHandler(ev.FileSystemEventHandler):
    """Passes every event to ``callback``, logging what it raises."""

    def __init__(self, callback: Callable[[ev.FileSystemEvent], None]) -> None:
        self._callback = callback

    def dispatch(self, event: ev.FileSystemEvent) -> None:
        try:
            self._callback(event)
        except Exception:
            # An exception here would end watchdog's dispatcher thread, and all watching.
            log.exception("failed to handle %r", event)


def alive(observer: BaseObserver | None, watch: ObservedWatch) -> bool:
    """True while ``watch`` still has a running emitter in ``observer``."""
    # Watchdog stops a watch's emitter when the watched folder itself is deleted.
    return observer is not None and any(
        e.watch == watch and e.should_keep_running() for e in list(observer.emitters)
    )


def unschedule(observer: BaseObserver | None, watch: ObservedWatch) -> None:
    """Unschedule ``watch``; one already gone is fine."""
    if observer is not None:
        with contextlib.suppress(KeyError):
            observer.unschedule(watch)


class _OverflowHandler(logging.Handler):
    def __init__(self, notify: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self._notify = notify

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._notify()


def _not_shutdown_noise(record: logging.LogRecord) -> bool:
    # Watchdog logs this ERROR when an emitter stops while a delayed move event is pending.
    return "called when the thread is inactive" not in record.getMessage()


class WatchdogLogs:
    """While attached, an overflow logged by watchdog calls ``on_overflow()`` (on watchdog's
    thread: keep it cheap)."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        self._handler = _OverflowHandler(on_overflow)
        self._level: int | None = None

    def attach(self) -> None:
        logging.getLogger("watchdog.observers.inotify").addFilter(_not_shutdown_noise)
        # A recursive watch racing ``mkdir -p`` registers a sub-folder twice and watchdog warns
        # from its reader thread; harmless, but as an error (pytest's -W error) it kills it.
        warnings.filterwarnings(
            "ignore",
            message=r"Callback with id '\d+' already exists",
            category=RuntimeWarning,
            module=r"watchdog\.observers\.inotify",
        )
        # Watchdog says nothing to handlers about an overflow; it only logs this warning.
        logger = logging.getLogger(_WATCHDOG_LOGGER)
        logger.addHandler(self._handler)
        logger.disabled = False  # dictConfig(disable_existing_loggers=True) must not blind us
        if logger.getEffectiveLevel() > logging.WARNING:
            self._level = logger.level
            logger.setLevel(logging.WARNING)

    def detach(self) -> None:
        logger = logging.getLogger(_WATCHDOG_LOGGER)
        logger.removeHandler(self._handler)
        if self._level is not None:
            logger.setLevel(self._level)
            self._level = None
