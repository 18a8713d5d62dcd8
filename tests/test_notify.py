"""Notifications: the rate limiter on a fake clock, then real D-Bus and notify-send against a
fake notification service on a private session bus, then the daemon end to end."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import images
import pytest
from daemonproc import DaemonProc, wait_for
from desktopenv import FakeNotificationService, SessionBus, emit_notification_signals, need

from amberpicd.desktop.notes import Batcher, Note
from amberpicd.desktop.notify import Notifier
from amberpicd.desktop.senders import (
    DBusSender,
    NotifySendSender,
    find_sender,
    session_bus_address,
)


def run(
    batcher: Batcher, events: list[tuple[float, str]], until: float
) -> list[tuple[float, Note]]:
    """Feed ``(time, status)`` events; wake at each deadline like the Notifier's thread."""
    shown: list[tuple[float, Note]] = []
    pending = sorted(events)
    now = 0.0
    while now <= until:
        while pending and pending[0][0] <= now:
            t, status = pending.pop(0)
            batcher.add(
                status, f"f{t:g}.jpg: decode failed: bad" if status == "failed" else None, t
            )
        shown += [(now, n) for n in batcher.due(now)]
        candidates = [t for t in (batcher.deadline(), pending[0][0] if pending else None) if t]
        if not candidates:
            break
        now = max(min(candidates), now + 1e-6)
    return shown


# -- the rate limiter ------------------------------------------------------------------------------
def test_one_failure_is_shown_after_the_gather_delay():
    b = Batcher("errors", gather=2, interval=60, quiet=5)
    b.add("failed", "a.jpg: decode failed: truncated", now=10)
    assert b.due(11) == []
    assert b.deadline() == 12
    (note,) = b.due(12)
    assert note.summary == "amberpicd: a file failed"
    assert note.body == "a.jpg: decode failed: truncated"
    assert b.due(100) == []


def test_a_thousand_failures_give_one_note_a_minute_not_a_thousand():
    b = Batcher("errors", gather=2, interval=60, quiet=5)
    events = [(i * 0.1, "failed") for i in range(1000)]  # 100 s of failures
    shown = run(b, events, until=300)
    times = [t for t, _ in shown]
    assert len(shown) == 3, [(t, n.summary) for t, n in shown]
    assert times[0] == pytest.approx(2.0) and times[1] - times[0] >= 60
    counted = sum(int(n.summary.split()[1]) for _, n in shown)
    assert counted == 1000  # every failure is in exactly one note
    assert "and " in shown[0][1].body and "amberpicd history --failed" in shown[0][1].body


def test_errors_mode_says_nothing_about_successes():
    b = Batcher("errors", gather=2, interval=60, quiet=5)
    assert run(b, [(i * 0.01, "done") for i in range(1000)], until=100) == []


def test_all_mode_sums_up_a_large_batch_once():
    b = Batcher("all", gather=2, interval=60, quiet=5, large_batch=10)
    events = [(i * 0.02, "done") for i in range(995)] + [(3.0, "failed")] * 3 + [(4.0, "skipped")]
    events += [(4.5, "unmatched")]
    shown = run(b, events, until=100)
    assert len(shown) == 1, shown
    t, note = shown[0]
    assert t == pytest.approx(19.88 + 5)  # quiet after the last file
    assert note.summary == "amberpicd: processed 1000 files"
    assert note.body.startswith("995 done, 3 failed, 2 skipped\n")
    assert note.kind == "batch" and note.urgency == "low"


def test_a_batch_summary_offers_undo_of_its_done_files_only():
    b = Batcher("all", gather=2, interval=60, quiet=5, large_batch=3)
    for i, status in enumerate(["done", "failed", "done", "skipped", "unmatched", "done"]):
        b.add(status, "x.jpg: bad" if status == "failed" else None, i * 0.1, i)
    b.add("done", None, 0.7)  # a report without a job cannot be undone from here
    notes = b.due(10.0)
    (summary,) = [n for n in notes if n.kind == "batch"]
    assert summary.undo == (0, 2, 5)
    assert all(not n.undo for n in notes if n.kind != "batch")  # failure notes: nothing to undo
    b.add("done", None, 20.0, 9)  # the next batch starts empty
    assert b.due(30.0) == []  # one file: below large_batch, no summary


def test_all_mode_small_batch_gives_no_summary_but_failures_still_show():
    b = Batcher("all", gather=2, interval=60, quiet=5, large_batch=10)
    shown = run(b, [(0, "done"), (0.5, "done"), (1, "failed")], until=100)
    assert [n.summary for _, n in shown] == ["amberpicd: a file failed"]


def test_all_mode_long_batch_still_reports_failures_each_interval():
    b = Batcher("all", gather=2, interval=60, quiet=5, large_batch=10)
    events = [(i * 1.0, "done") for i in range(200)] + [(10.0, "failed")]
    shown = run(b, events, until=400)
    assert [n.kind for _, n in shown] == ["failures", "batch"]
    assert shown[0][0] == pytest.approx(60)  # waited for the batch, but not forever


def test_off_says_nothing_and_drops_pending():
    b = Batcher("errors", gather=2)
    b.add("failed", "x", now=0)
    b.mode = "off"
    assert b.due(10) == [] and b.deadline() is None
    b.add("failed", "y", now=11)
    assert b.due(100) == [] and b.flush() == []


def test_flush_sends_what_is_pending():
    b = Batcher("errors", gather=2)
    b.add("failed", "x", now=0)
    b.add("failed", "y", now=0.5)
    (note,) = b.flush()
    assert note.summary == "amberpicd: 2 files failed" and note.body.startswith("x\ny\n")


# -- the Notifier's thread -------------------------------------------------------------------------
@dataclass
class Report:
    status: str
    error: str | None = None


class Recorder:
    name = "recorder"

    def __init__(self, ok: bool = True) -> None:
        self.notes: list[Note] = []
        self.ok = ok

    def send(self, note: Note) -> bool:
        self.notes.append(note)
        return self.ok

    def close(self) -> None:
        pass


def test_notifier_batches_a_burst_into_one_note():
    sent = Recorder()
    notifier = Notifier(lambda: "errors", sender=sent, batcher=Batcher(gather=0.2, interval=60))
    for i in range(50):
        notifier.report(Report("failed", f"{i}.jpg: decode failed: bad"))
    wait_for(lambda: sent.notes, 5, "a notification")
    notifier.close()
    assert len(sent.notes) == 1 and sent.notes[0].summary == "amberpicd: 50 files failed"


def test_notifier_close_flushes_and_off_starts_nothing():
    sent = Recorder()
    notifier = Notifier(lambda: "errors", sender=sent, batcher=Batcher(gather=60))
    notifier.report(Report("failed", "a.jpg: bad"))
    notifier.close()
    assert [n.body for n in sent.notes] == ["a.jpg: bad"]

    quiet = Notifier(lambda: "off", sender=Recorder())
    quiet.report(Report("failed", "b.jpg: bad"))
    assert quiet._thread is None
    quiet.close()


def test_no_notification_system_is_not_an_error(caplog):
    notifier = Notifier(lambda: "errors", env={}, batcher=Batcher(gather=0))
    with caplog.at_level(logging.INFO, logger="amberpicd.desktop.notify"):
        notifier.report(Report("failed", "a.jpg: bad"))
        notifier.report(Report("failed", "b.jpg: bad"))
        notifier.close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["notifications: no session bus or notify-send here; not notifying"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


# -- real D-Bus ------------------------------------------------------------------------------------
@pytest.fixture
def bus():
    b = SessionBus()
    yield b
    b.close()


@pytest.fixture
def service(bus):
    s = FakeNotificationService(bus.address)
    yield s
    s.close()


def test_jeepney_sends_a_freedesktop_notification(bus, service):
    sender = find_sender({"DBUS_SESSION_BUS_ADDRESS": bus.address, "PATH": ""})
    assert isinstance(sender, DBusSender)
    assert sender.send(Note("amberpicd: a file failed", "a.jpg: decode failed: truncated"))
    assert sender.send(Note("amberpicd: 2 files failed", "x\ny"))
    sender.close()
    first, second = service.received
    assert (first.app, first.summary, first.body) == (
        "amberpicd",
        "amberpicd: a file failed",
        "a.jpg: decode failed: truncated",
    )
    assert first.hints["urgency"] == ("y", 1)
    assert first.replaces == 0 and second.replaces != 0  # the second replaces the first bubble


def test_notify_send_is_the_fallback(bus, service, monkeypatch):
    need("notify-send")
    monkeypatch.setitem(sys.modules, "jeepney", None)  # as if jeepney were not installed
    sender = find_sender({"DBUS_SESSION_BUS_ADDRESS": bus.address, "PATH": "/usr/bin:/bin"})
    assert isinstance(sender, NotifySendSender)
    assert sender.send(Note("amberpicd: processed 12 files", "12 done", urgency="low"))
    wait_for(lambda: service.received, 5, "the notification")
    (got,) = service.received
    assert (got.app, got.summary, got.body) == (
        "amberpicd",
        "amberpicd: processed 12 files",
        "12 done",
    )
    assert got.hints["urgency"] == ("y", 0)


def test_the_batch_summarys_undo_button_hands_its_files_to_the_daemon(bus, service):
    clicked: list[tuple[int, ...]] = []
    sender = find_sender({"DBUS_SESSION_BUS_ADDRESS": bus.address}, on_undo=clicked.append)
    assert isinstance(sender, DBusSender)
    try:
        assert sender.send(Note("amberpicd: a file failed", "a.jpg: bad"))  # no files: no button
        assert sender.send(Note("s", "b", kind="batch", undo=(11, 12)))
        plain, batch = service.received
        assert plain.actions == [] and batch.actions == ["undo", "Undo"]
        service.click(plain.id, "undo")  # control: a note without the button does nothing
        assert sender.send(Note("s", "b", kind="other", undo=(13,)))
        other = service.received[-1]
        service.click(other.id, "default")  # clicking the body is not Undo (and closes it)
        service.click(batch.id, "undo")
        wait_for(lambda: clicked, 5, "the Undo handed over")
        assert clicked == [(11, 12)]
        service.click(batch.id, "undo")  # the note is gone (closed): a second click is nothing
        assert sender.send(Note("x", "y"))  # a round trip after the click, for it to arrive
        wait_for(lambda: len(service.received) == 4, 5, "the fourth note")
        assert clicked == [(11, 12)]
    finally:
        sender.close()


def test_only_the_notification_service_can_press_undo(bus, service):
    from jeepney import message_bus
    from jeepney.io.blocking import open_dbus_connection

    clicked: list[tuple[int, ...]] = []
    sender = DBusSender(bus.address, on_undo=clicked.append)
    impostor = open_dbus_connection(bus=bus.address)
    try:
        assert sender.send(Note("s", "a", kind="batch", undo=(11,)))
        assert sender.send(Note("s", "b", kind="other", undo=(12,)))
        a, b = service.received
        emit_notification_signals(impostor, a.id, "undo")  # another program on the bus
        impostor.send_and_get_reply(message_bus.ListNames())  # the bus has routed its signal
        service.click(b.id, "undo")  # control run: the service itself is heard, after it
        wait_for(lambda: clicked, 5, "the service's click")
        assert clicked == [(12,)]
    finally:
        impostor.close()
        sender.close()


def test_a_replaced_summary_without_files_takes_its_undo_away(bus, service):
    clicked: list[tuple[int, ...]] = []
    sender = DBusSender(bus.address, on_undo=clicked.append)
    try:
        assert sender.send(Note("s", "first", kind="batch", undo=(11,)))
        assert sender.send(Note("s", "second", kind="batch"))  # replaces the first on screen
        first, second = service.received
        assert second.replaces == first.id and second.actions == []
        service.click(first.id, "undo")
        assert sender.send(Note("ping", "p"))
        wait_for(lambda: len(service.received) == 3, 5, "the ping")
        assert clicked == []
    finally:
        sender.close()


def test_bus_without_a_notification_service(bus, caplog):
    sender = find_sender({"DBUS_SESSION_BUS_ADDRESS": bus.address})
    assert sender is not None
    try:
        with caplog.at_level(logging.DEBUG, logger="amberpicd.desktop"):
            assert sender.send(Note("s", "b")) is False
    finally:
        sender.close()
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_bus_address_discovery(tmp_path: Path):
    assert session_bus_address({}) is None
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "tcp:host=example.org,port=1"}) is None
    mixed = "tcp:host=h,port=1;unix:path=/run/user/1/bus"
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": mixed}) == "unix:path=/run/user/1/bus"
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) is None  # no socket there
    import socket

    runtime = Path("/tmp") / f"apd-rt-{tmp_path.name}"
    runtime.mkdir()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(runtime / "bus"))
            assert session_bus_address({"XDG_RUNTIME_DIR": str(runtime)}) == (
                f"unix:path={runtime}/bus"
            )
    finally:
        (runtime / "bus").unlink(missing_ok=True)
        runtime.rmdir()


# -- the daemon end to end -------------------------------------------------------------------------
CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 2
  notify: all
watch:
  - inbox: {root}/inbox
rules:
  - name: web
    pipeline: [{{resize: {{width: 32, height: 32}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def test_daemon_sums_up_a_batch_in_one_notification(tmp_path: Path, bus, service):
    d = DaemonProc(tmp_path, CONFIG)
    d.env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
    try:
        d.start()
        staging = tmp_path / "staging"
        staging.mkdir()
        for i in range(12):
            images.jpeg(staging / f"p{i}.jpg", (64 + i, 48))  # distinct: no dedup
        (staging / "broken.jpg").write_bytes(images.encoded(images.upright(64, 48), "JPEG")[:300])
        for f in sorted(staging.iterdir()):
            f.rename(d.inbox / f.name)
        wait_for(lambda: len(d.history()) == 13, 30, "13 files processed")
        wait_for(lambda: service.received, 15, "the batch summary")
        assert d.stop() == 0
        (note,) = service.received
        assert note.summary == "amberpicd: processed 13 files"
        assert note.body.startswith("12 done, 1 failed\nbroken.jpg: ")
        assert "notifications: sent over D-Bus" in d.logs()
    finally:
        d.close()


UNDO_CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 2
  notify: all
watch:
  - inbox: {root}/inbox
    originals: move
    archive: {root}/archive
rules:
  - name: web
    pipeline: [{{resize: {{width: 32, height: 32}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def test_the_batch_notifications_undo_takes_the_batch_back(tmp_path: Path, bus, service):
    """Undo pressed on a batch summary: every done file's original is back in the inbox byte
    for byte and its outputs are gone; the failed file is left where it was."""
    d = DaemonProc(tmp_path, UNDO_CONFIG)
    d.env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
    try:
        d.start()
        staging = tmp_path / "staging"
        staging.mkdir()
        for i in range(11):
            images.jpeg(staging / f"p{i}.jpg", (64 + i, 48))
        (staging / "broken.jpg").write_bytes(images.encoded(images.upright(64, 48), "JPEG")[:300])
        originals = {f.name: f.read_bytes() for f in staging.iterdir()}
        for f in sorted(staging.iterdir()):
            f.rename(d.inbox / f.name)
        wait_for(lambda: len(d.history()) == 12, 30, "12 files processed")
        (note,) = wait_for(lambda: service.received, 15, "the batch summary")
        assert note.actions == ["undo", "Undo"]
        out = tmp_path / "out"
        assert len(list(out.glob("*.webp"))) == 11  # control: there is something to take back
        assert sorted(p.name for p in d.inbox.iterdir()) == ["broken.jpg"]
        service.click(note.id, "undo")
        wait_for(lambda: sum(h["state"] == "undone" for h in d.history()) == 11, 30, "11 undone")
        assert list(out.glob("*.webp")) == []
        assert {p.name: p.read_bytes() for p in d.inbox.iterdir()} == originals
        assert list((tmp_path / "archive").rglob("*.jpg")) == []
        assert d.stop() == 0  # (not taken again after an undo: tests/test_undo_daemon.py)
    finally:
        d.close()
