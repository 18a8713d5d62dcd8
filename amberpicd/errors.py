"""Every error amberpicd raises on purpose, defined once.

    AmberpicError
    ├── ConfigError            the YAML config is invalid (file:line: message)
    ├── FileError              one input file could not be processed ("name: action: reason")
    │   ├── InputRejected      refused before decoding: not a file, unsupported format, a limit
    │   ├── DecodeError        the decoder failed (truncated, corrupt, bomb)
    │   ├── OperationError     an operation of a pipeline failed
    │   ├── EncodeError        encoding failed, or no quality fits max_bytes
    │   ├── OutputError        an output could not be placed or written
    │   ├── OriginalError      the original could not be kept, moved, trashed or deleted
    │   └── WorkerError        the worker process crashed or timed out
    ├── WorkerLost             a worker process died or overran its time (no file known yet)
    ├── JournalError           the state database cannot be used
    │   ├── JournalLocked      another process holds it locked
    │   ├── JournalReadOnly    its filesystem is mounted read-only
    │   └── JournalGone        its file was deleted or replaced under the running daemon
    └── ControlError           the control socket failed, or no daemon answers

A FileError's message is one line a user can act on, e.g.
``IMG_0042.heic: decode failed: file is truncated``.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from pathlib import Path

# What must not reach a terminal or a log line raw: C0/C1 controls (ESC sequences, line
# breaks), Unicode line separators and bidi overrides, and undecodable file-name bytes
# (lone surrogates from surrogateescape, which a strict UTF-8 stream cannot even write).
CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[{CONTROLS}\udc80-\udcff]")


def printable(text: str) -> str:
    """``text`` safe to show on one line: unprintable characters become ``\\xNN`` (an
    undecodable byte shows as the byte) or ``\\uNNNN`` escapes."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match[0])
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, text)


# A Python bytes literal inside a message: b'/tmp/x' or b"it's", with escapes.
_BYTES_LITERAL = re.compile(r"""(?<![\w'"])b('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")


def _unrepr(text: str) -> str:
    # Third-party code (shutil, older trash code) builds messages from bytes paths: show the path.
    def decode(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match[0])
        except (ValueError, SyntaxError):
            return match[0]
        return os.fsdecode(value) if isinstance(value, bytes) else match[0]

    return _BYTES_LITERAL.sub(decode, text)


def _name(value: object) -> str:
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.fsdecode(value)
    return str(value)


def error_text(exc: BaseException, *, filename: bool = True) -> str:
    """``exc`` as a user reads it, on one line and never as a Python repr.

    An OSError is its file name(s), however encoded (bytes, or str with undecodable bytes),
    then its strerror: ``/archive/x.jpg: No space left on device``. ``filename=False`` leaves
    the names out (when the message already names the file). Anything else is its message,
    or its type's name when the message is empty. Either way bytes literals in the text
    (``b'/tmp/\\xff.jpg'``) become the path they spell, and controls are escaped.
    """
    if isinstance(exc, OSError) and exc.strerror:
        text = _unrepr(exc.strerror)
        names = [_name(n) for n in (exc.filename, exc.filename2) if n is not None]
        if filename and names:
            text = f"{' -> '.join(names)}: {text}"
    else:
        text = _unrepr(str(exc)).strip() or type(exc).__name__
    return printable(text)


class OneLineFormatter(logging.Formatter):
    """A log formatter whose messages are always one line: a file name holding a newline
    or an escape sequence cannot split a line or fake another (tracebacks stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


class AmberpicError(Exception):
    """Base class of every error amberpicd raises on purpose."""


class ConfigError(AmberpicError):
    """The configuration cannot be used. ``str()`` is ``file:line: message``."""

    def __init__(self, message: str, source: str | Path | None = None, line: int | None = None):
        self.message = message
        self.source = str(source) if source is not None else None
        self.line = line
        where = ""
        if self.source:
            where = f"{Path(self.source).name}:{line}: " if line else f"{Path(self.source).name}: "
        super().__init__(f"{where}{message}")


class FileError(AmberpicError):
    """Processing one file failed. ``str()`` is ``name: action: reason``."""

    action = "processing failed"

    def __init__(self, path: str | Path, reason: str, action: str | None = None):
        self.path = Path(path)
        self.reason = reason
        if action is not None:
            self.action = action
        action_part = f"{self.action}: " if self.action else ""
        # One line, whatever the file is called or the reason quotes: both shown with escapes.
        super().__init__(f"{printable(self.path.name)}: {action_part}{printable(str(reason))}")


class InputRejected(FileError):
    # The reason says it all: "bomb.png: 10000000000 pixels exceeds max_pixels 100000000".
    action = ""


class SourceChanged(InputRejected):
    """The file changed while it was being read: what was read is no file that ever existed
    whole, so the job is dropped and the file taken again once it settles."""


class DecodeError(FileError):
    action = "decode failed"


class OperationError(FileError):
    action = "operation failed"


class EncodeError(FileError):
    action = "encode failed"


class OutputError(FileError):
    action = "write failed"


class OriginalError(FileError):
    action = "original not handled"


class WorkerError(FileError):
    action = "worker failed"


class WorkerLost(AmberpicError):
    """A worker process crashed or timed out; ``reason`` says which ("worker crashed")."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class JournalError(AmberpicError):
    """The journal (SQLite state database) cannot be opened or written."""


class JournalLocked(JournalError):
    """Another process holds the journal locked (the daemon waits for it)."""


class JournalReadOnly(JournalError):
    """The journal's filesystem is mounted read-only (the daemon waits for it)."""


class JournalGone(JournalError):
    """The journal's file was deleted or replaced while the daemon had it open."""


class FileBusy(AmberpicError):
    """Another live amberpicd (the daemon, or a ``process`` run) has a job of this file in
    flight: the journal gives each file to one of them (``begin_file``); this one leaves it.
    ``str()`` is ``name: being processed by another amberpicd (pid N)``."""

    def __init__(self, path: str | Path, pid: str):
        self.path, self.pid = Path(path), pid
        super().__init__(
            f"{printable(self.path.name)}: being processed by another amberpicd (pid {pid})"
        )


class ControlError(AmberpicError):
    """The control socket failed, or no daemon is listening on it."""
