"""The control socket's wire format, shared by the server and the client.

One JSON object per line each way: a request ``{"cmd": "status", ...args}``, a response
``{"ok": true, ...}`` or ``{"ok": false, "error": "message"}``. This module builds and parses
those lines, reads and writes them with deadlines, and names the socket's path; it opens no
socket but the client's, and that one is ``AF_UNIX`` only.

A request line is parsed defensively: hostile JSON (nesting deeper than ``MAX_NESTING``,
integers of more than ``MAX_INT_DIGITS`` digits, floats that overflow, NaN/Infinity) gets a
plain error message, never an exception.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amberpicd.errors import ControlError
from amberpicd.paths import runtime_dir

SOCKET_NAME = "control.sock"
# sockaddr_un.sun_path is 108 bytes; keep one for the terminating NUL.
MAX_PATH_BYTES = 107
MAX_REQUEST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 64 << 20
MAX_NESTING = 32
MAX_INT_DIGITS = 100


class TooLarge(Exception):
    pass


def socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """``runtime_dir(env)/control.sock``; ControlError if too long for a Unix socket."""
    path = runtime_dir(env) / SOCKET_NAME
    socket_address(path)
    return path


def socket_address(path: Path) -> str:
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise ControlError(
            f"the control socket path {path} is {size} bytes long, more than the "
            f"{MAX_PATH_BYTES} a Unix socket allows; point XDG_RUNTIME_DIR at a shorter folder"
        )
    return os.fspath(path)


def recv_line(sock: socket.socket, limit: int, deadline: float) -> bytes | None:
    """Bytes up to the first newline (or EOF); None on EOF before any byte."""
    buf = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(buf) if buf else None
        start = len(buf)
        buf += chunk
        end = buf.find(b"\n", start)
        if end > limit or (end < 0 and len(buf) > limit):
            raise TooLarge
        if end >= 0:
            return bytes(buf[:end])


def send(sock: socket.socket, data: bytes, deadline: float) -> None:
    # sendall loops over partial sends; its timeout covers the whole call.
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(data, socket.MSG_NOSIGNAL)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=_jsonable).encode() + b"\n"


def _jsonable(value: object) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def error_reply(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def parse_request(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """``(request, "")`` or ``(None, error message)``.

    Hostile JSON gets a plain error, never an exception: nesting deeper than
    ``MAX_NESTING`` (checked before parsing: the parser recurses), integers of more than
    ``MAX_INT_DIGITS`` digits, floats that overflow, and NaN/Infinity (not JSON).
    """
    if _too_deep(line):
        return None, "bad request: nested too deeply"
    try:
        request = json.loads(
            line, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
        )
    except _OutOfRange:
        return None, "bad request: a number out of range"
    except (ValueError, RecursionError):
        return None, "bad request: not JSON"
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return None, 'bad request: expected a JSON object with a "cmd" string'
    return request, ""


_BRACKETS = re.compile(rb'"(?:[^"\\]+|\\.)*"?|[\[{]+|[\]}]+')


def _too_deep(line: bytes) -> bool:
    # Strings are skipped whole (brackets inside them don't count); runs of brackets are
    # counted a run at a time, so even a megabyte of "[" costs one regex pass.
    depth = 0
    for match in _BRACKETS.finditer(line):
        token = match[0]
        if token[0] in b"[{":
            depth += len(token)
            if depth > MAX_NESTING:
                return True
        elif token[0] in b"]}":
            depth -= len(token)
    return False


class _OutOfRange(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _OutOfRange
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


def _connect(address: str, path: Path, deadline: float) -> socket.socket:
    # A full listen backlog refuses at once (EAGAIN) rather than queueing us: the server
    # drains it within moments, so try again until the deadline before calling it busy.
    delay = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.connect(address)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise ControlError(f"amberpicd is not running (no socket at {path})") from None
        except (BlockingIOError, TimeoutError):
            sock.close()
            if time.monotonic() + delay >= deadline:
                busy = f"amberpicd at {path} is too busy to accept a connection"
                raise ControlError(busy) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from exc


def request(path: Path, cmd: str, /, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
    """Send one command to the daemon at ``path`` and return its response dict.

    Error responses (``"ok": false``) are returned, not raised. ControlError when no daemon
    listens, on timeout, or on a response that is not a JSON object with a bool ``"ok"``.
    """
    address = socket_address(Path(path))
    payload = encode({**args, "cmd": cmd})
    deadline = time.monotonic() + timeout
    with _connect(address, Path(path), deadline) as sock:
        try:
            # The server may have answered (a refusal) before reading: read that answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                send(sock, payload, deadline)
            line = recv_line(sock, MAX_RESPONSE_BYTES, deadline)
        except TimeoutError:
            raise ControlError(f"amberpicd did not answer {cmd!r} within {timeout:g} s") from None
        except TooLarge:
            raise ControlError(f"bad response: over {MAX_RESPONSE_BYTES} bytes") from None
        except OSError as exc:
            raise ControlError(f"lost the connection to amberpicd: {exc.strerror or exc}") from exc
    if not line:
        raise ControlError("bad response: amberpicd closed the connection without answering")
    try:
        response = json.loads(line)
    except ValueError:
        raise ControlError("bad response: not JSON") from None
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        raise ControlError('bad response: not a JSON object with an "ok" flag')
    return response
