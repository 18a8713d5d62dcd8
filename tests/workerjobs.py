"""Top-level job functions for tests/test_workers.py: workers must be able to import them."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from amberpicd.errors import DecodeError

INITIALIZED = False


def echo(value):
    return value


def add(a, b):
    return a + b


def whoami() -> tuple[int, int]:
    """(pid, parent pid) of the worker."""
    return os.getpid(), os.getppid()


def rendezvous(directory: str, me: str, other: str, deadline: float = 10.0) -> str:
    """Announce ``me`` and return once ``other`` has announced itself: proves both run at once."""
    Path(directory, me).touch()
    end = time.monotonic() + deadline
    while not Path(directory, other).exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{other} never arrived")
        time.sleep(0.01)
    return me


def wait_for_file(path: str, deadline: float = 30.0) -> str:
    end = time.monotonic() + deadline
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(path)
        time.sleep(0.01)
    return "seen"


def fail(message: str):
    raise ValueError(message)


def fail_file_error(name: str):
    raise DecodeError(name, "file is truncated")


class _Unpicklable(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.lock = threading.Lock()


def fail_unpicklable(message: str):
    raise _Unpicklable(message)


def return_unpicklable():
    return threading.Lock()


def segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def exit_now(code: int):
    os._exit(code)


def sleep_forever():
    threading.Event().wait()


def allocate(size: int) -> int:
    return len(bytearray(size))


def mark_initialized() -> None:
    global INITIALIZED
    INITIALIZED = True


def is_initialized() -> bool:
    return INITIALIZED


def broken_initializer() -> None:
    raise ValueError("no codecs here")


def note_start_then_fail(directory: str) -> None:
    """An initializer that leaves a file per worker start, then fails."""
    Path(directory, str(os.getpid())).touch()
    raise ValueError("no codecs")


def retire_and_report_pid() -> int:
    from amberpicd.workers.child import retire_after_job

    retire_after_job()
    return os.getpid()


def loaded(names: list[str]) -> dict[str, bool]:
    """Which of the modules ``names`` the worker had loaded before this job."""
    import sys

    return {name: name in sys.modules for name in names}
