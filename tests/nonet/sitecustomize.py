"""A network tripwire for whole process trees, installed through Python's audit hooks.

Use: put this folder first on ``PYTHONPATH`` and name a log file, then run anything::

    PYTHONPATH=tests/nonet AMBERPIC_NONET=/tmp/nonet.log amberpicd process ...

Every Python process that starts with that environment (the CLI or daemon, the
forkserver and its workers, the tray, helpers run with ``sys.executable``) imports this
module at start-up and installs the hook; forked children inherit it. The hook allows
``AF_UNIX`` sockets (multiprocessing pipes, the control socket, D-Bus, sd_notify) and
stops everything else:

* creating a socket of any other family (``socket.__new__``), or one whose family is not
  given (it would default to ``AF_INET``);
* ``connect``/``bind``/``sendto``/``sendmsg`` on a socket that is not ``AF_UNIX``;
* every name lookup (``getaddrinfo``, ``gethostbyname``, ...): a lookup is already a
  packet on the network.

With ``AMBERPIC_NONET_EXEC=python`` it also stops running any program but the Python
interpreter itself (``subprocess``, ``os.exec*``, ``os.posix_spawn``, ``os.system``):
proof that, say, Ghostscript is never started.

A violation appends ``VIOLATION pid=... event args`` to the log, says so on stderr, and
ends the process with exit code 86 at once (``os._exit``): an exception could be caught
and swallowed by the code under test. Each process that installs the hook logs an
``armed pid=... argv`` line, so a test can also check that the hook was really there.
Tests assert the log holds no ``VIOLATION`` line.

Debian's own ``sitecustomize`` (apport hooks) is shadowed while this is on the path; it
does nothing the tests need.
"""

from __future__ import annotations

import os
import socket
import sys

EXIT_CODE = 86
_LOG = os.environ.get("AMBERPIC_NONET", "")
_EXEC = os.environ.get("AMBERPIC_NONET_EXEC", "")
_LOOKUPS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_USES = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
_RUNS = frozenset({"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"})
_PYTHON = {os.path.realpath(sys.executable), os.path.realpath(sys._base_executable)}
_busy = False


def _write(line: str) -> None:
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (line.replace("\n", "\\n") + "\n").encode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)


def _violation(event: str, args: tuple) -> None:
    line = f"VIOLATION pid={os.getpid()} {event} {args!r}"[:2000]
    try:
        _write(line)
        os.write(2, f"nonet: {line}\n".encode("utf-8", "backslashreplace"))
    finally:
        os._exit(EXIT_CODE)


def _program(event: str, args: tuple) -> str | None:
    """The program an exec-like event would run, or None when it cannot tell."""
    if event == "os.system":
        return str(args[0]).split()[0] if args and str(args[0]).split() else None
    if event == "os.spawn":
        return os.fsdecode(args[1]) if len(args) > 1 else None
    target = args[0] if args else None
    if target is None and event == "subprocess.Popen" and len(args) > 1:
        argv = args[1]
        target = argv if isinstance(argv, (str, bytes)) else (argv or [None])[0]
    return os.fsdecode(target) if target is not None else None


def _hook(event: str, args: tuple) -> None:
    global _busy
    if _busy:  # our own logging raises events (open) too
        return
    if event == "socket.__new__":
        family = args[1]
        if family != socket.AF_UNIX:
            _busy = True
            _violation(event, (f"family={family}",))
    elif event in _USES:
        if getattr(args[0], "family", None) != socket.AF_UNIX:
            _busy = True
            _violation(event, args[1:])
    elif event in _LOOKUPS:
        _busy = True
        _violation(event, args)
    elif _EXEC and event in _RUNS:
        program = _program(event, args)
        resolved = program and os.path.realpath(program)
        if resolved not in _PYTHON:
            _busy = True
            _violation(event, (program,))


if _LOG:
    sys.addaudithook(_hook)
    _write(f"armed pid={os.getpid()} {getattr(sys, 'argv', None)!r}")
