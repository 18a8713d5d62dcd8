"""The local control socket: one JSON request line in, one JSON response line out.

A request is ``{"cmd": "status", ...args}``; a response is ``{"ok": true, ...}`` or
``{"ok": false, "error": "message"}``. One request per connection.

Only ``AF_UNIX`` is ever used, never a network family. Three things keep other users out:
the socket's folder is created 0700, the socket file is 0600 from the moment it exists, and
each connection's kernel-reported peer uid (``SO_PEERCRED``) must be our own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from amberpicd.errors import ControlError
from amberpicd.paths import runtime_dir

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
# sockaddr_un.sun_path is 108 bytes; keep one for the terminating NUL.
MAX_PATH_BYTES = 107
IO_TIMEOUT = 3.0
MAX_REQUEST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 64 << 20
MAX_CONNECTIONS = 8
_BACKLOG = 16
_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid; uid_t uid; gid_t gid

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class _TooLarge(Exception):
    pass


def socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """``runtime_dir(env)/control.sock``; ControlError if too long for a Unix socket."""
    path = runtime_dir(env) / SOCKET_NAME
    _address(path)
    return path


def _address(path: Path) -> str:
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise ControlError(
            f"the control socket path {path} is {size} bytes long, more than the "
            f"{MAX_PATH_BYTES} a Unix socket allows; point XDG_RUNTIME_DIR at a shorter folder"
        )
    return os.fspath(path)


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end, as the kernel saw it at connect."""
    return _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def _recv_line(sock: socket.socket, limit: int, deadline: float) -> bytes | None:
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
            raise _TooLarge
        if end >= 0:
            return bytes(buf[:end])


def _send(sock: socket.socket, data: bytes, deadline: float) -> None:
    # sendall loops over partial sends; its timeout covers the whole call.
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(data, socket.MSG_NOSIGNAL)


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=_jsonable).encode() + b"\n"


def _jsonable(value: object) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _answers(address: str) -> bool:
    """Does a live server accept connections at ``address``?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except (BlockingIOError, TimeoutError):
            return True  # backlog full: alive but busy
        except OSError as exc:
            raise ControlError(f"cannot check the socket {address}: {exc.strerror or exc}") from exc
    return True


class ControlServer:
    """Serve ``handler`` on a Unix socket at ``path``, one thread per connection.

    ``handler`` receives the request dict (with a str ``"cmd"``) and returns the response
    dict; ``"ok": true`` is added when missing. It runs on connection threads, possibly
    several at once, so it must be thread-safe. Its exceptions become
    ``{"ok": false, "error": "internal error: ..."}`` and are logged.

    ``allowed_uid`` (default: our effective uid) is the only peer uid served; everyone
    else, root included, gets a refusal. ``io_timeout``, ``max_request_bytes`` and
    ``max_connections`` bound what one client can hold.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        allowed_uid: int | None = None,
        io_timeout: float = IO_TIMEOUT,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.allowed_uid = os.geteuid() if allowed_uid is None else allowed_uid
        self.io_timeout = io_timeout
        self.max_request_bytes = max_request_bytes
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._stopping = threading.Event()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind and listen, then serve on a daemon thread.

        ControlError if the path is too long, is not a socket, or a live server answers on it.
        """
        if self._sock is not None:
            raise ControlError(f"the control server on {self.path} is already started")
        address = _address(self.path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
        sock = self._bind(address)
        try:
            sock.listen(_BACKLOG)
            sock.setblocking(False)  # accept() only after poll(); a vanished client can't block
            self._wake = os.pipe()
        except OSError as exc:
            sock.close()
            self._unlink_own()
            raise ControlError(f"cannot listen on {self.path}: {exc.strerror}") from exc
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="amberpicd-control", daemon=True)
        self._thread.start()
        log.info("control socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop accepting, close, and remove the socket file (if it is still ours)."""
        if self._sock is None:
            return
        self._stopping.set()
        assert self._wake is not None
        os.write(self._wake[1], b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()
        for fd in self._wake:
            os.close(fd)
        self._sock = self._thread = self._wake = None
        self._unlink_own()

    def _bind(self, address: str) -> socket.socket:
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # Linux gives a new socket file the mode of the socket's own inode, less the
            # umask: setting it first means the file is never wider than 0600, without
            # changing the process-wide umask under other threads' feet. (Should a kernel
            # refuse, the chmod below still applies and the 0700 folder covers the gap.)
            with contextlib.suppress(OSError):
                os.fchmod(sock.fileno(), 0o600)
            try:
                sock.bind(address)
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise ControlError(f"cannot bind {self.path}: {exc.strerror}") from exc
                self._remove_stale(address)
                continue
            try:
                os.chmod(address, 0o600)  # normally a no-op; covers a umask that clears u+rw
                st = os.stat(address)
            except OSError as exc:
                sock.close()
                with contextlib.suppress(OSError):
                    os.unlink(address)
                raise ControlError(f"cannot secure {self.path}: {exc.strerror}") from exc
            self._identity = (st.st_dev, st.st_ino)
            return sock
        raise ControlError(f"cannot bind {self.path}: it keeps being recreated by someone else")

    def _remove_stale(self, address: str) -> None:
        try:
            st = os.lstat(address)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"{self.path} exists and is not a socket; move it away")
        if _answers(address):
            raise ControlError(f"another amberpicd is already listening on {self.path}")
        log.info("removing stale control socket %s", self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)

    def _unlink_own(self) -> None:
        # Another daemon may have replaced the file since: only remove the one we bound.
        identity, self._identity = self._identity, None
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == identity:
                os.unlink(self.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("cannot remove %s: %s", self.path, exc.strerror)

    def _serve(self) -> None:
        assert self._sock is not None and self._wake is not None
        listener, wake = self._sock, self._wake[0]
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(wake, select.POLLIN)
        while not self._stopping.is_set():
            try:
                poller.poll()
                if self._stopping.is_set():
                    break
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            except OSError as exc:
                # EMFILE and friends: don't spin, don't die.
                log.error("control socket: accept failed: %s", exc)
                self._stopping.wait(0.5)
                continue
            try:
                self._dispatch(conn)
            except Exception:
                log.exception("control socket: cannot serve a connection")
                conn.close()

    def _dispatch(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            with conn:
                conn.setblocking(False)  # a short reply fits the socket buffer; never wait
                with contextlib.suppress(OSError):
                    conn.send(_encode(_error("busy: too many control connections")))
            return
        try:
            threading.Thread(
                target=self._connection, args=(conn,), name="amberpicd-control-conn", daemon=True
            ).start()
        except BaseException:
            self._slots.release()
            raise

    def _connection(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._exchange(conn)
        except OSError as exc:
            log.debug("control socket: client went away: %s", exc)
        except Exception:
            log.exception("control socket: connection failed")
        finally:
            self._slots.release()

    def _exchange(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self.io_timeout
        pid, uid, _gid = peer_credentials(conn)
        if uid != self.allowed_uid:
            log.warning("control socket: refused pid %d of uid %d", pid, uid)
            _send(conn, _encode(_error(f"refused: uid {uid} may not control amberpicd")), deadline)
            return
        try:
            line = _recv_line(conn, self.max_request_bytes, deadline)
        except TimeoutError:
            data = _encode(_error(f"bad request: no complete line within {self.io_timeout:g} s"))
        except _TooLarge:
            data = _encode(_error(f"bad request: longer than {self.max_request_bytes} bytes"))
        else:
            if line is None:
                return  # connected and closed: a liveness probe
            data = self._respond(line)
        _send(conn, data, time.monotonic() + self.io_timeout)

    def _respond(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
        except ValueError:
            return _encode(_error("bad request: not JSON"))
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return _encode(_error('bad request: expected a JSON object with a "cmd" string'))
        try:
            response = self.handler(request)
            if not isinstance(response, dict):
                raise TypeError(f"the handler returned {type(response).__name__}, not a dict")
            if "ok" not in response:
                response = {"ok": True, **response}
            return _encode(response)
        except Exception as exc:
            log.exception("control command %r failed", request["cmd"])
            return _encode(_error(f"internal error: {exc or type(exc).__name__}"))


def request(path: Path, cmd: str, /, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
    """Send one command to the daemon at ``path`` and return its response dict.

    Error responses (``"ok": false``) are returned, not raised. ControlError when no daemon
    listens, on timeout, or on a response that is not a JSON object with a bool ``"ok"``.
    """
    address = _address(Path(path))
    payload = _encode({**args, "cmd": cmd})
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"amberpicd is not running (no socket at {path})") from None
        except (BlockingIOError, TimeoutError):
            raise ControlError(f"amberpicd at {path} is too busy to accept a connection") from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from exc
        try:
            # The server may have answered (a refusal) before reading: read that answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _send(sock, payload, deadline)
            line = _recv_line(sock, MAX_RESPONSE_BYTES, deadline)
        except TimeoutError:
            raise ControlError(f"amberpicd did not answer {cmd!r} within {timeout:g} s") from None
        except _TooLarge:
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
