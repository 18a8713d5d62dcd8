"""The control socket, over real Unix sockets: protocol, permissions, stale files, peers."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import shutil
import socket
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import need
import pytest

from amberpicd.daemon.control import ControlServer, peer_credentials, request, socket_path
from amberpicd.errors import ControlError

NOBODY = 65534


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # tmp_path can exceed the 107-byte limit of a Unix socket path: use a short folder.
    path = Path(tempfile.mkdtemp(prefix="apc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(short_dir: Path) -> Path:
    return short_dir / "run" / "control.sock"


def echo(req: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "echo": req}


@pytest.fixture
def server(sock_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(sock_path, echo, io_timeout=0.5)
    srv.start()
    yield srv
    srv.stop()


def raw_exchange(path: Path, data: bytes | None, half_close: bool = False) -> bytes:
    """Send raw bytes (or nothing), return everything the server sends until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        if data is not None:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def stale_socket(path: Path) -> None:
    """Leave a socket file behind as a killed server would: bound, then closed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_roundtrip_passes_cmd_and_args(sock_path: Path):
    seen: list[dict[str, Any]] = []

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        seen.append(req)
        return {"queue": 3}  # no "ok": the server adds it

    with ControlServer(sock_path, handler):
        response = request(sock_path, "status", verbose=True, where=Path("/x/y"))
    assert response == {"ok": True, "queue": 3}
    assert seen == [{"cmd": "status", "verbose": True, "where": "/x/y"}]


def test_error_responses_are_returned_not_raised(sock_path: Path):
    with ControlServer(sock_path, lambda req: {"ok": False, "error": "no such job"}):
        assert request(sock_path, "retry", id=7) == {"ok": False, "error": "no such job"}


def test_socket_is_0600_and_folder_0700_whatever_the_umask(sock_path, monkeypatch):
    # With a wide-open umask and chmod disabled, only the mode set before bind() can
    # make the file 0600: it is never wider, not even for an instant.
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0)
    try:
        srv = ControlServer(sock_path, echo)
        srv.start()
    finally:
        os.umask(old)
    try:
        st = sock_path.lstat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700
        assert request(sock_path, "ping")["ok"] is True
    finally:
        srv.stop()
    assert not sock_path.exists()


def test_stale_socket_file_is_replaced(short_dir: Path, sock_path: Path):
    stale_socket(sock_path)
    keep = short_dir / "stale-link"
    os.link(sock_path, keep)  # keeps the stale inode alive, so its number can't be reused
    with ControlServer(sock_path, echo):
        assert request(sock_path, "status")["echo"] == {"cmd": "status"}
        assert sock_path.lstat().st_ino != keep.lstat().st_ino
        assert keep.lstat().st_nlink == 1  # the stale name was unlinked


def test_live_server_makes_second_start_fail(server: ControlServer, sock_path: Path):
    second = ControlServer(sock_path, lambda req: {"who": "second"})
    with pytest.raises(ControlError, match="another amberpicd is already listening on"):
        second.start()
    second.stop()  # never started: must not remove the first server's socket
    assert request(sock_path, "status")["echo"] == {"cmd": "status"}


def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: Path):
    sock_path.parent.mkdir(mode=0o700)
    sock_path.write_text("precious")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(sock_path, echo).start()
    assert sock_path.read_text() == "precious"


def test_stop_removes_only_our_socket(sock_path: Path):
    srv = ControlServer(sock_path, echo)
    srv.start()
    sock_path.unlink()
    stale_socket(sock_path)  # someone else's socket now has the name
    srv.stop()
    assert sock_path.exists()


@pytest.mark.parametrize(
    ("data", "half_close", "error"),
    [
        (b"garbage\n", False, "bad request: not JSON"),
        (b"\xff\xfe\xfa\n", False, "bad request: not JSON"),
        (b"[1, 2]\n", False, 'bad request: expected a JSON object with a "cmd" string'),
        (b'{"cmd": 5}\n', False, 'bad request: expected a JSON object with a "cmd" string'),
        (b"\n", False, "bad request: not JSON"),
        (b'{"cmd": "status"}', True, None),  # EOF instead of a newline ends the line too
        (b'{"cmd": "sta', False, "bad request: no complete line within 0.5 s"),  # stalled
        (None, False, "bad request: no complete line within 0.5 s"),  # silent client
    ],
)
def test_bad_clients_get_an_error_and_the_server_lives(server, sock_path, data, half_close, error):
    reply = json.loads(raw_exchange(sock_path, data, half_close))
    if error is None:
        assert reply == {"ok": True, "echo": {"cmd": "status"}}
    else:
        assert reply == {"ok": False, "error": error}
    assert request(sock_path, "status")["ok"] is True


def test_half_closed_silent_client_and_probe(server: ControlServer, sock_path: Path):
    # A client that connects and closes at once (a liveness probe) gets no reply.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
    assert request(sock_path, "status")["ok"] is True


def test_oversized_request_is_refused(sock_path: Path):
    calls: list[dict[str, Any]] = []
    with ControlServer(sock_path, lambda req: calls.append(req) or {}, max_request_bytes=1000):
        reply = json.loads(raw_exchange(sock_path, b"x" * 5000))
        assert reply == {"ok": False, "error": "bad request: longer than 1000 bytes"}
        assert request(sock_path, "s", pad="y" * 500)["ok"] is True
    assert len(calls) == 1


def test_silent_client_does_not_block_others(sock_path: Path):
    with ControlServer(sock_path, echo, io_timeout=3), socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(sock_path))
        started = time.monotonic()
        assert request(sock_path, "status")["ok"] is True
        assert time.monotonic() - started < 2


def test_handler_exception_becomes_internal_error(sock_path: Path, caplog):
    def handler(req: dict[str, Any]) -> Any:
        if req["cmd"] == "boom":
            raise RuntimeError("kaboom")
        if req["cmd"] == "list":
            return [1, 2]
        if req["cmd"] == "object":
            return {"value": object()}
        return {"fine": True}

    logs = caplog.at_level(logging.ERROR, logger="amberpicd.daemon.control")
    with logs, ControlServer(sock_path, handler):
        assert request(sock_path, "boom") == {"ok": False, "error": "internal error: kaboom"}
        reply = request(sock_path, "list")
        assert reply == {
            "ok": False,
            "error": "internal error: the handler returned list, not a dict",
        }
        reply = request(sock_path, "object")
        assert reply == {"ok": False, "error": "internal error: object is not JSON serializable"}
        assert request(sock_path, "status") == {"ok": True, "fine": True}
    failures = [r for r in caplog.records if "control command 'boom' failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_large_responses_and_requests_arrive_whole(sock_path: Path):
    blob = "".join(chr(0x20 + i % 90) for i in range(3_000_000))
    failures = [{"path": f"/inbox/IMG_{i:05}.jpg", "error": "decode failed"} for i in range(20_000)]
    with ControlServer(sock_path, lambda req: {"blob": blob, "failures": failures, "n": req["n"]}):
        reply = request(sock_path, "status", n=len(blob), pad="z" * 500_000)
    assert reply["blob"] == blob
    assert reply["failures"] == failures
    assert reply["n"] == len(blob)


def test_too_many_connections_get_busy(sock_path: Path):
    entered, release = threading.Event(), threading.Event()

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        return {"slow": True}

    results: list[dict[str, Any]] = []
    with ControlServer(sock_path, handler, max_connections=1):
        first = threading.Thread(target=lambda: results.append(request(sock_path, "slow")))
        first.start()
        assert entered.wait(5)
        assert request(sock_path, "status") == {
            "ok": False,
            "error": "busy: too many control connections",
        }
        release.set()
        first.join(5)
        assert results == [{"ok": True, "slow": True}]
        # The slot frees just after the first reply is sent: the next request gets in.
        wait_for(lambda: request(sock_path, "again")["ok"])


def test_other_uid_is_refused_by_peer_check(sock_path: Path, caplog):
    calls: list[dict[str, Any]] = []
    srv = ControlServer(
        sock_path, lambda req: calls.append(req) or {}, allowed_uid=os.geteuid() + 1
    )
    with caplog.at_level(logging.WARNING, logger="amberpicd.daemon.control"), srv:
        reply = request(sock_path, "status")
    assert reply == {"ok": False, "error": f"refused: uid {os.geteuid()} may not control amberpicd"}
    assert calls == []
    assert any("refused pid" in r.getMessage() for r in caplog.records)


def test_peer_credentials_of_a_socketpair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert peer_credentials(a) == (os.getpid(), os.geteuid(), os.getegid())


def _fork_as_nobody(path: Path) -> tuple[int, int, int]:
    """Fork a child that becomes uid 65534, waits for b"go", then tries the socket.

    It forks before the server thread exists. Returns (pid, go_fd, result_fd); the child
    writes one JSON line: {"connect_errno": n} or {"reply": "..."}.
    """
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # child: only raw syscalls, always _exit
        result: dict[str, Any] = {}
        try:
            os.close(go_w)
            os.close(res_r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.read(go_r, 2)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(str(path))
            except OSError as exc:
                result = {"connect_errno": exc.errno}
            else:
                # As request() does: a refusal may come (and the server close) before we
                # send, so a failed send is no failure; read one line, as a recv after the
                # reply may see ECONNRESET (the server closed without reading ours).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b'{"cmd": "status"}\n')
                data = b""
                while b"\n" not in data and (chunk := sock.recv(4096)):
                    data += chunk
                result = {"reply": data.decode()}
        except BaseException as exc:
            result = {"child_error": repr(exc)}
        finally:
            os.write(res_w, json.dumps(result).encode() + b"\n")
            os._exit(0)
    os.close(go_r)
    os.close(res_w)
    return pid, go_w, res_r


@pytest.mark.parametrize("widen", [False, True])
def test_another_user_cannot_control_the_daemon(short_dir: Path, sock_path: Path, widen: bool):
    if os.geteuid() != 0:
        need.missing("needs root to switch to another uid")
    calls: list[dict[str, Any]] = []
    child, go, result = _fork_as_nobody(sock_path)
    try:
        with ControlServer(sock_path, lambda req: calls.append(req) or {}):
            # A dedicated folder made traversable, so only the socket's defences are tested.
            for folder in (short_dir, sock_path.parent):
                folder.chmod(0o755)
            if widen:
                sock_path.chmod(0o666)  # take away the file mode: the peer check must hold
            os.write(go, b"go")
            ready, _, _ = select.select([result], [], [], 10)
            assert ready, "the child did not report"
            outcome = json.loads(os.read(result, 65536))
    finally:
        os.close(go)
        os.close(result)
        os.waitpid(child, 0)
    if widen:
        assert "reply" in outcome, outcome
        assert json.loads(outcome["reply"]) == {
            "ok": False,
            "error": f"refused: uid {NOBODY} may not control amberpicd",
        }
    else:
        assert outcome == {"connect_errno": errno.EACCES}
    assert calls == []


def test_client_without_server_says_not_running(sock_path: Path):
    with pytest.raises(ControlError, match=r"amberpicd is not running \(no socket at "):
        request(sock_path, "status")
    stale_socket(sock_path)
    with pytest.raises(ControlError, match="amberpicd is not running"):
        request(sock_path, "status")


def test_client_times_out_on_a_server_that_never_answers(sock_path: Path):
    sock_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(sock_path))
        mute.listen(1)  # connections queue in the backlog; nobody accepts or answers
        started = time.monotonic()
        with pytest.raises(ControlError, match=r"did not answer 'status' within 0.3 s"):
            request(sock_path, "status", timeout=0.3)
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"hello\n", "bad response: not JSON"),
        (b'{"no_ok": 1}\n', 'bad response: not a JSON object with an "ok" flag'),
        (b"", "bad response: amberpicd closed the connection without answering"),
    ],
)
def test_client_rejects_bad_responses(sock_path: Path, answer: bytes, message: str):
    sock_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as fake:
        fake.bind(str(sock_path))
        fake.listen(1)

        def serve_once() -> None:
            conn, _ = fake.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

        thread = threading.Thread(target=serve_once)
        thread.start()
        try:
            with pytest.raises(ControlError, match=message):
                request(sock_path, "status", timeout=5)
        finally:
            thread.join(5)


def test_socket_path_and_length_limit(short_dir: Path):
    assert socket_path({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path(
        "/run/user/1000/amberpic/control.sock"
    )
    assert socket_path({"HOME": "/home/ann"}) == Path(
        "/home/ann/.local/state/amberpic/control.sock"
    )
    long_dir = "/tmp/" + "d" * 100
    with pytest.raises(ControlError, match="more than the 107 a Unix socket allows"):
        socket_path({"XDG_RUNTIME_DIR": long_dir})
    long_path = short_dir / ("s" * 120)
    with pytest.raises(ControlError, match="more than the 107"):
        ControlServer(long_path, echo).start()
    with pytest.raises(ControlError, match="more than the 107"):
        request(long_path, "status")
    assert not long_path.exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"[" * 200_000 + b"\n", "bad request: nested too deeply"),
        (
            b'{"cmd": "s", "a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n",
            "bad request: nested too deeply",
        ),
        (
            b'{"cmd": "s", "a": ' + b'{"b": ' * 100_000 + b"1" + b"}" * 100_001 + b"\n",
            "bad request: nested too deeply",
        ),
        (b'{"cmd": "s", "n": ' + b"9" * 100_000 + b"}\n", "bad request: a number out of range"),
        (b'{"cmd": "s", "n": 1e999}\n', "bad request: a number out of range"),
        (b'{"cmd": "s", "n": NaN}\n', "bad request: not JSON"),
        (b'{"cmd": "s", "n": -Infinity}\n', "bad request: not JSON"),
    ],
)
def test_hostile_json_gets_an_error_and_the_server_lives(server, sock_path, data, error):
    reply = json.loads(raw_exchange(sock_path, data))
    assert reply == {"ok": False, "error": error}
    assert request(sock_path, "status")["ok"] is True


def test_moderate_nesting_and_big_numbers_are_fine(server, sock_path):
    # Control run for the limits above: ordinary JSON of some depth and size still passes.
    deep = 1
    for _ in range(30):
        deep = [deep]
    reply = request(sock_path, "status", deep=deep, n=10**40, f=1.5e300)
    assert reply["echo"] == {"cmd": "status", "deep": deep, "n": 10**40, "f": 1.5e300}


@pytest.mark.parametrize("idle", [8, 40, 200])
def test_idle_connections_do_not_starve_status(sock_path: Path, idle: int):
    # Idle clients (connected, silent, or mid-line) cost the server nothing but a socket;
    # beyond the connection limit the oldest idle ones are dropped, never the newcomer.
    with ControlServer(sock_path, echo, io_timeout=3) as srv, contextlib.ExitStack() as stack:
        clients = []
        for i in range(idle):
            sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            sock.connect(str(sock_path))
            if i % 2:
                sock.sendall(b'{"cmd": "sta')  # a partial line, never finished
            clients.append(sock)
        for _ in range(3):
            started = time.monotonic()
            assert request(sock_path, "status", timeout=2)["echo"] == {"cmd": "status"}
            assert time.monotonic() - started < 1
        assert srv.open_connections() <= srv.max_connections


def test_slow_handlers_do_not_stop_reading_or_writing(sock_path: Path):
    # Handlers run on their own threads: one stuck handler never delays another request.
    release = threading.Event()

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req["cmd"] == "stuck":
            release.wait(10)
        return {"cmd": req["cmd"]}

    with ControlServer(sock_path, handler, io_timeout=3):
        stuck = threading.Thread(target=lambda: request(sock_path, "stuck", timeout=10))
        stuck.start()
        try:
            started = time.monotonic()
            assert request(sock_path, "status", timeout=2) == {"ok": True, "cmd": "status"}
            assert time.monotonic() - started < 1
        finally:
            release.set()
            stuck.join(10)


def test_a_client_that_never_reads_its_reply_is_dropped(sock_path: Path):
    blob = "x" * 8_000_000  # far more than a socket buffer holds
    server = ControlServer(sock_path, lambda req: {"blob": blob}, io_timeout=0.5)
    with server, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hog:
        hog.connect(str(sock_path))
        hog.sendall(b'{"cmd": "big"}\n')
        started = time.monotonic()
        assert request(sock_path, "small", timeout=2)["blob"] == blob
        assert time.monotonic() - started < 2
        wait_for(lambda: server.open_connections() == 0)  # the hog's reply was given up


def test_requests_whose_client_left_while_waiting_are_not_run(sock_path: Path):
    release = threading.Event()
    calls: list[str] = []

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        calls.append(req["cmd"])
        if req["cmd"] == "block":
            release.wait(10)
        return {}

    with ControlServer(sock_path, handler, max_handlers=1) as srv:
        blocker = threading.Thread(target=lambda: request(sock_path, "block", timeout=10))
        blocker.start()
        wait_for(lambda: calls == ["block"])
        for _ in range(10):  # queued behind the blocker, then gone
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
                gone.connect(str(sock_path))
                gone.sendall(b'{"cmd": "abandoned"}\n')
        wait_for(lambda: srv.open_connections() == 11)  # each one's line is in
        half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with half:  # a half-closed client still waits for its answer: it is served
            half.connect(str(sock_path))
            half.sendall(b'{"cmd": "half"}\n')
            half.shutdown(socket.SHUT_WR)
            wait_for(lambda: srv.open_connections() == 12)
            release.set()
            blocker.join(10)
            half.settimeout(5)
            assert json.loads(half.recv(1000)) == {"ok": True}
        assert request(sock_path, "status")["ok"] is True
    assert calls == ["block", "half", "status"]
