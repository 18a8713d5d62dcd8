"""The local control socket's server: one JSON request line in, one JSON response line out.

One request per connection (the wire format is in ``control_wire``, with the client,
``request()``, re-exported here; running the handler is ``control_handlers``; the socket
file is ``control_socket``). This module accepts, reads and writes connections.

Only ``AF_UNIX`` is ever used, never a network family. Three things keep other users out:
the socket's folder is created 0700, the socket file is 0600 from the moment it exists, and
each connection's kernel-reported peer uid (``SO_PEERCRED``) must be our own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from pathlib import Path

from amberpicd.daemon.control_handlers import Conn, Handler, Handlers, peer_credentials
from amberpicd.daemon.control_socket import bind_socket, unlink_own
from amberpicd.daemon.control_wire import (
    MAX_REQUEST_BYTES,
    encode,
    error_reply,
    request,
    socket_address,
    socket_path,
)
from amberpicd.errors import ControlError, printable

__all__ = ["ControlServer", "peer_credentials", "request", "socket_path"]

log = logging.getLogger(__name__)

IO_TIMEOUT = 3.0
# Idle connections cost a socket and at most max_request_bytes of buffer each.
MAX_CONNECTIONS = 64
MAX_HANDLERS = 4
_BACKLOG = 64


class ControlServer:
    """Serve ``handler`` on a Unix socket at ``path``.

    One thread multiplexes every connection without blocking (reading requests, writing
    replies), so a client that is silent, sends half a line or never reads its reply costs
    one socket until its ``io_timeout`` deadline, and never delays anyone else. Each complete
    request runs ``handler`` on a thread of its own, at most ``max_handlers`` at once (the
    rest wait their turn), so it must be thread-safe.

    ``handler`` receives the request dict (with a str ``"cmd"``) and returns the response
    dict; ``"ok": true`` is added when missing. Its exceptions become
    ``{"ok": false, "error": "internal error: ..."}`` and are logged.

    ``allowed_uid`` (default: our effective uid) is the only peer uid served; everyone
    else, root included, gets a refusal. ``io_timeout``, ``max_request_bytes`` and
    ``max_connections`` bound what one client can hold: when all connections are taken, the
    one that has waited longest without sending a whole request is dropped for the newcomer,
    and only when every connection has a request in hand is the newcomer told "busy".
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
        max_handlers: int = MAX_HANDLERS,
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.allowed_uid = os.geteuid() if allowed_uid is None else allowed_uid
        self.io_timeout = io_timeout
        self.max_request_bytes = max_request_bytes
        self.max_connections = max_connections
        self.max_handlers = max_handlers
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._wake_lock = threading.Lock()  # handler threads wake the loop; stop() closes
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._stopping = threading.Event()
        self._conns: dict[int, Conn] = {}  # by fd; touched by the serving thread only
        self._handlers = Handlers(handler, max_handlers, self._poke)
        self._count = 0  # len(self._conns), readable from any thread

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def open_connections(self) -> int:
        """How many client connections are open now (for tests and status)."""
        return self._count

    def start(self) -> None:
        """Bind and listen, then serve on a daemon thread.

        ControlError if the path is too long, is not a socket, or a live server answers on it.
        """
        if self._sock is not None:
            raise ControlError(f"the control server on {self.path} is already started")
        address = socket_address(self.path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
        sock, self._identity = bind_socket(self.path, address)
        try:
            sock.listen(_BACKLOG)
            sock.setblocking(False)  # accept() only after poll(); a vanished client can't block
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            sock.close()
            unlink_own(self.path, self._identity)
            self._identity = None
            raise ControlError(f"cannot listen on {self.path}: {exc.strerror}") from exc
        self._sock = sock
        self._stopping.clear()
        # Handlers of an earlier run may still finish: their results go to the old queue.
        self._handlers = Handlers(self.handler, self.max_handlers, self._poke)
        self._thread = threading.Thread(target=self._serve, name="amberpicd-control", daemon=True)
        self._thread.start()
        log.info("control socket listening on %s", printable(str(self.path)))

    def stop(self) -> None:
        """Stop accepting, close, and remove the socket file (if it is still ours)."""
        if self._sock is None:
            return
        self._stopping.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()
        with self._wake_lock:
            assert self._wake is not None
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        self._sock = self._thread = None
        unlink_own(self.path, self._identity)
        self._identity = None

    def _poke(self) -> None:
        # Under the lock: a handler finishing after stop() must not write to a closed (or
        # since reused) fd number. A full pipe already means "wake up": nothing lost.
        with self._wake_lock:
            if self._wake is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake[1], b"x")

    # -- the serving thread ------------------------------------------------------------

    def _serve(self) -> None:
        assert self._sock is not None and self._wake is not None
        listener, wake = self._sock, self._wake[0]
        self._poller = select.poll()
        self._poller.register(listener, select.POLLIN)
        self._poller.register(wake, select.POLLIN)
        try:
            while not self._stopping.is_set():
                try:
                    self._turn(listener, wake)
                except Exception:
                    log.exception("control socket: serving failed; carrying on")
                    self._stopping.wait(0.1)  # never spin on a persistent fault
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)

    def _turn(self, listener: socket.socket, wake: int) -> None:
        now = time.monotonic()
        deadlines = [c.deadline for c in self._conns.values() if c.state != "handling"]
        timeout_ms = None if not deadlines else max(0, int((min(deadlines) - now) * 1000) + 1)
        events = self._poller.poll(timeout_ms)
        if self._stopping.is_set():
            return
        for fd, mask in events:
            if fd == wake:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 4096)
            elif fd == listener.fileno():
                self._accept(listener)
            elif (conn := self._conns.get(fd)) is not None:
                self._io(conn, mask)
        for conn, data in self._handlers.collect():
            if self._conns.get(conn.sock.fileno()) is conn:
                self._reply(conn, data)
        self._start_handlers()
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.state != "handling"]:
            if conn.deadline <= now:
                if conn.state == "reading":
                    error = f"bad request: no complete line within {self.io_timeout:g} s"
                    self._reply(conn, encode(error_reply(error)))
                else:  # a client that does not read its reply: give it up
                    log.debug("control socket: client did not read its reply in time")
                    self._close(conn)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(_BACKLOG):  # what is queued now; then serve the others again
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # EMFILE and friends: make room by dropping the oldest idle client, or wait.
                log.error("control socket: accept failed: %s", exc.strerror or exc)
                if not self._evict_idle():
                    self._stopping.wait(0.5)
                return
            sock.setblocking(False)
            if len(self._conns) >= self.max_connections and not self._evict_idle():
                # Every connection holds a request: the newcomer waits its turn.
                with sock, contextlib.suppress(OSError):
                    sock.send(encode(error_reply("busy: too many control connections")))
                continue
            conn = Conn(sock, time.monotonic() + self.io_timeout)
            self._conns[sock.fileno()] = conn
            self._count = len(self._conns)
            pid, uid, _gid = peer_credentials(sock)
            if uid != self.allowed_uid:
                log.warning("control socket: refused pid %d of uid %d", pid, uid)
                refusal = error_reply(f"refused: uid {uid} may not control amberpicd")
                self._reply(conn, encode(refusal))
            else:
                self._poller.register(sock, select.POLLIN)

    def _evict_idle(self) -> bool:
        idle = [c for c in self._conns.values() if c.state == "reading"]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.deadline)
        log.debug("control socket: dropping an idle client for a new one")
        error = error_reply("bad request: dropped while idle: too many control connections")
        with contextlib.suppress(OSError):
            oldest.sock.send(encode(error))
        self._close(oldest)
        return True

    def _io(self, conn: Conn, mask: int) -> None:
        try:
            if conn.state == "reading":
                self._read(conn)
            elif conn.state == "writing":
                self._write(conn)
        except OSError as exc:
            log.debug("control socket: client went away: %s", exc.strerror or exc)
            self._close(conn)

    def _read(self, conn: Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            if not conn.buf:
                self._close(conn)  # connected and closed: a liveness probe
                return
            line = bytes(conn.buf)
        else:
            start = len(conn.buf)
            conn.buf += chunk
            end = conn.buf.find(b"\n", start)
            if end > self.max_request_bytes or (end < 0 and len(conn.buf) > self.max_request_bytes):
                error = error_reply(f"bad request: longer than {self.max_request_bytes} bytes")
                self._reply(conn, encode(error))
                return
            if end < 0:
                return
            line = bytes(conn.buf[:end])
        conn.buf = bytearray()
        self._poller.unregister(conn.sock)
        conn.state = "handling"
        self._handlers.waiting.append((conn, line))
        self._start_handlers()

    def _start_handlers(self) -> None:
        for conn, problem in self._handlers.start_waiting():
            if problem is None:
                self._close(conn)  # gone while it waited: its answer would go nowhere
            else:
                self._reply(conn, encode(error_reply(problem)))

    def _reply(self, conn: Conn, data: bytes) -> None:
        if conn.state == "reading":
            with contextlib.suppress(KeyError):  # a refused peer was never registered
                self._poller.unregister(conn.sock)
        conn.state = "writing"
        conn.out = memoryview(data)
        conn.deadline = time.monotonic() + self.io_timeout
        try:
            self._write(conn)  # most replies fit the socket buffer: done at once
        except OSError as exc:
            log.debug("control socket: client went away: %s", exc.strerror or exc)
            self._close(conn)
            return
        if conn.sock.fileno() >= 0:
            self._poller.register(conn.sock, select.POLLOUT)

    def _write(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.out, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            self._close(conn)

    def _close(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd >= 0 and self._conns.get(fd) is conn:
            del self._conns[fd]
            self._count = len(self._conns)
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(fd)
        conn.state = "closed"
        conn.sock.close()
