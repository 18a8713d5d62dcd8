"""The control server's handlers: each complete request runs the daemon's handler on a thread
of its own, at most ``limit`` at once (the rest wait their turn), and becomes the bytes of
one reply line. The handler's exceptions become ``{"ok": false, "error": "internal error:
..."}`` and are logged. Also the per-client record (``Conn``) and the peer check. Touches
only the sockets the server hands it.
"""

from __future__ import annotations

import collections
import logging
import queue
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

from amberpicd.daemon.control_wire import encode, error_reply, parse_request
from amberpicd.errors import printable

log = logging.getLogger("amberpicd.daemon.control")

_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid; uid_t uid; gid_t gid

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end, as the kernel saw it at connect."""
    return _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def _hung_up(sock: socket.socket) -> bool:
    # POLLHUP: the peer closed both ways (a half-close, SHUT_WR, still waits for its answer).
    probe = select.poll()
    probe.register(sock, select.POLLOUT)
    return any(mask & (select.POLLHUP | select.POLLERR) for _, mask in probe.poll(0))


class Conn:
    """One client: reading its line, waiting for the handler, or writing the reply."""

    __slots__ = ("buf", "deadline", "out", "sock", "state")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.out = memoryview(b"")
        self.state = "reading"  # -> "handling" -> "writing"


class Handlers:
    """The requests waiting for a handler thread, those running, and their answers."""

    def __init__(self, handler: Handler, limit: int, poke: Callable[[], None]) -> None:
        self.handler = handler
        self.limit = limit
        self._poke = poke  # wakes the serving thread: an answer is ready
        self.waiting: collections.deque[tuple[Conn, bytes]] = collections.deque()
        self._running = 0  # handler threads started and not yet collected
        self._done: queue.SimpleQueue[tuple[Conn, bytes]] = queue.SimpleQueue()

    def start_waiting(self) -> Iterator[tuple[Conn, str | None]]:
        """Start handlers for waiting requests while there is room; yields the connections
        the server must close (``None``: hung up meanwhile) or refuse (with the reason)."""
        while self.waiting and self._running < self.limit:
            conn, line = self.waiting.popleft()
            if conn.sock.fileno() < 0:
                continue  # closed while it waited (the server is stopping)
            if _hung_up(conn.sock):
                yield conn, None
                continue
            thread = threading.Thread(
                target=self._handle,
                args=(conn, line, self._done),
                name="amberpicd-control-handler",
                daemon=True,
            )
            self._running += 1
            try:
                thread.start()
            except BaseException:
                self._running -= 1
                yield conn, "busy: cannot start a handler thread"
                raise

    def collect(self) -> list[tuple[Conn, bytes]]:
        """The answers ready now."""
        answers = []
        while True:
            try:
                answers.append(self._done.get_nowait())
            except queue.Empty:
                return answers
            self._running -= 1

    def _handle(self, conn: Conn, line: bytes, done: queue.SimpleQueue) -> None:
        # On a handler thread, parsing too (a hostile megabyte may take a moment): only the
        # result crosses back to the serving thread, through the queue.
        try:
            request, problem = parse_request(line)
            data = encode(error_reply(problem)) if request is None else self._respond(request)
        except BaseException as exc:  # even encoding failures get an answer
            data = encode(error_reply(f"internal error: {type(exc).__name__}"))
        done.put((conn, data))
        self._poke()

    def _respond(self, request: dict[str, Any]) -> bytes:
        try:
            response = self.handler(request)
            if not isinstance(response, dict):
                raise TypeError(f"the handler returned {type(response).__name__}, not a dict")
            if "ok" not in response:
                response = {"ok": True, **response}
            return encode(response)
        except Exception as exc:
            log.exception("control command %s failed", printable(repr(request["cmd"])))
            return encode(error_reply(f"internal error: {exc or type(exc).__name__}"))
