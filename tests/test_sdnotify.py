"""sd_notify over real AF_UNIX datagram sockets, filesystem and abstract."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from amberpicd.daemon import sdnotify
from amberpicd.daemon.sdnotify import Watchdog, notify, watchdog_interval


class Receiver:
    """A bound datagram socket standing in for systemd; ``env`` points NOTIFY_SOCKET at it."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": address}

    def read(self) -> str:
        self.sock.settimeout(5)
        return self.sock.recv(65536).decode()

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.sock.recv(65536)


@pytest.fixture(params=["path", "abstract"])
def receiver(request) -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    folder = Path(tempfile.mkdtemp(prefix="apn-", dir="/tmp"))  # short: 107-byte limit
    try:
        if request.param == "path":
            address = str(folder / "notify")
            sock.bind(address)
        else:
            name = f"amberpic-test-{os.getpid()}-{folder.name}"
            sock.bind("\0" + name)
            address = "@" + name
        yield Receiver(sock, address)
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_notify_sends_one_datagram(receiver: Receiver):
    assert notify("READY=1", "STATUS=watching 2 inboxes", env=receiver.env) is True
    assert receiver.read() == "READY=1\nSTATUS=watching 2 inboxes"
    receiver.assert_empty()


def test_helpers(receiver: Receiver):
    assert sdnotify.ready("watching 2 inboxes", env=receiver.env)
    assert receiver.read() == "READY=1\nSTATUS=watching 2 inboxes"
    assert sdnotify.status("3 queued\nFORGED=1", env=receiver.env)
    assert receiver.read() == "STATUS=3 queued FORGED=1"  # one line: no injected keys
    assert sdnotify.stopping(env=receiver.env)
    assert receiver.read() == "STOPPING=1"


def test_watchdog_pings(receiver: Receiver):
    env = {**receiver.env, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    dog = Watchdog(env)
    assert dog.interval == 15.0
    assert dog.ping() is True
    assert receiver.read() == "WATCHDOG=1"
    assert dog.ping_if_due() is False  # just pinged: not due for interval/2
    receiver.assert_empty()
    assert dog.ping() is True  # an explicit ping always goes out
    assert receiver.read() == "WATCHDOG=1"


def test_ping_if_due_after_half_the_interval(receiver: Receiver, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(sdnotify.time, "monotonic", lambda: now[0])
    dog = Watchdog({**receiver.env, "WATCHDOG_USEC": "20000000"})  # interval 10 s
    assert dog.ping_if_due() is True  # never pinged: due
    assert receiver.read() == "WATCHDOG=1"
    now[0] += 4.9
    assert dog.ping_if_due() is False
    receiver.assert_empty()
    now[0] += 0.1
    assert dog.ping_if_due() is True
    assert receiver.read() == "WATCHDOG=1"


def test_watchdog_off_sends_nothing(receiver: Receiver):
    dog = Watchdog(receiver.env)
    assert dog.interval is None
    assert dog.ping() is False
    assert dog.ping_if_due() is False
    receiver.assert_empty()


def test_without_notify_socket_nothing_happens():
    assert notify("READY=1", env={}) is False
    assert notify("READY=1", env={"NOTIFY_SOCKET": ""}) is False
    assert sdnotify.ready("up", env={}) is False
    assert Watchdog({"WATCHDOG_USEC": "1000000"}).ping() is False


@pytest.mark.parametrize(
    "address",
    [
        "/tmp/amberpic-no-such-dir/notify",  # nobody listening
        "@amberpic-nobody-listens-here",
        "vsock:2:1234",  # not AF_UNIX: refused, never attempted
        "relative/path",
        "/tmp/" + "x" * 200,  # too long for sun_path
        "/tmp/nul\0byte",
    ],
)
def test_failures_are_logged_not_raised(address: str, caplog):
    with caplog.at_level(logging.DEBUG, logger="amberpicd.daemon.sdnotify"):
        assert notify("READY=1", env={"NOTIFY_SOCKET": address}) is False
    assert caplog.records and all(r.levelno == logging.DEBUG for r in caplog.records)


def test_notify_reads_os_environ_by_default(receiver: Receiver, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env["NOTIFY_SOCKET"])
    assert notify("STATUS=hi") is True
    assert receiver.read() == "STATUS=hi"


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "3000"}, 0.0015),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "OWN"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "OTHER"}, None),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": ""}, 10.0),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None):
    pids = {"OWN": str(os.getpid()), "OTHER": str(os.getpid() + 1)}
    env = {k: pids.get(v, v) for k, v in env.items()}
    assert watchdog_interval(env) == interval
    assert Watchdog(env).interval == interval


def test_feed_pings_only_while_the_loop_goes_round(receiver: Receiver, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(sdnotify.time, "monotonic", lambda: now[0])
    dog = Watchdog({**receiver.env, "WATCHDOG_USEC": "20000000"})  # interval 10 s
    assert dog.feed(heartbeat=999.0) is True  # the loop went round a second ago
    assert receiver.read() == "WATCHDOG=1"
    now[0] += 20
    assert dog.feed(heartbeat=1001.0) is False  # silent for 19 s: hung, let systemd act
    receiver.assert_empty()
    assert dog.feed(heartbeat=now[0]) is True  # control: alive again, pinged again
    assert receiver.read() == "WATCHDOG=1"
