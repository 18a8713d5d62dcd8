"""An open() counter for whole process trees, installed through Python's audit hooks.

Use: put this folder first on ``PYTHONPATH``, name a log file and a folder, then run anything::

    PYTHONPATH=tests/openlog AMBERPIC_OPENLOG=/tmp/opens.log AMBERPIC_OPENLOG_UNDER=/x/inbox ...

Every Python process started with that environment (the daemon, the forkserver and the
workers it forks) imports this module at start-up and appends ``pid path`` to the log for each
``open`` audit event (``open()``, ``io.open``, ``os.open``) on a path below the folder, and
``pid @name`` for a file opened for reading by a bare name through a folder descriptor. Each
process that installs the hook logs an ``armed pid=...`` line, so a test can check the hook
was really there. SQLite and other C code opening files directly are not seen: this counts
what Python code reads, which is where every image read of amberpicd happens.
"""

from __future__ import annotations

import os
import sys

_LOG = os.environ.get("AMBERPIC_OPENLOG", "")
_UNDER = os.environ.get("AMBERPIC_OPENLOG_UNDER", "")
_busy = False


def _write(line: str) -> None:
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (line.replace("\n", "\\n") + "\n").encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def _hook(event: str, args: tuple) -> None:
    global _busy
    if event != "open" or _busy or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
    if not isinstance(path, str) or flags & os.O_DIRECTORY:
        return  # a folder opened (to walk it) reads no file
    if not path.startswith("/"):
        # An open through a folder descriptor (openat) carries only the name: the daemon
        # reads every input that way. Files read (not written, not folders) are logged as
        # "@name" for the test to place; anything else relative is not ours to count.
        if flags & (os.O_ACCMODE | os.O_CREAT) or "/" in path:
            return
        path = f"@{path}"
    elif not path.startswith(_UNDER):
        return
    _busy = True  # our own os.open raises the event too
    try:
        _write(f"{os.getpid()} {path}")
    finally:
        _busy = False


if _LOG and _UNDER:
    sys.addaudithook(_hook)
    _write(f"armed pid={os.getpid()} {getattr(sys, 'argv', None)!r}")
