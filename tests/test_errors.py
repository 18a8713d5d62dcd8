"""What users read of an error: one line, the file's name shown, never a Python repr."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import need

from amberpicd.engine.originals import handle_original
from amberpicd.errors import OneLineFormatter, OriginalError, error_text, printable
from amberpicd.fs.identity import FileIdentity

RAW = os.fsdecode(b"caf\xe9\n.jpg")  # Latin-1 bytes (not UTF-8) and a newline


def test_oserror_with_a_bytes_filename_shows_the_name_not_a_repr():
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), b"/tmp/caf\xe9.jpg")
    assert "b'" in str(exc)  # the control: Python's own str() is a repr
    assert error_text(exc) == "/tmp/caf\\xe9.jpg: No space left on device"
    assert error_text(exc, filename=False) == "No space left on device"


def test_oserror_with_an_undecodable_str_filename_and_two_names():
    exc = OSError(errno.EXDEV, "Invalid cross-device link")
    exc.filename, exc.filename2 = "/in/" + RAW, Path("/out/x.jpg")
    assert error_text(exc) == "/in/caf\\xe9\\x0a.jpg -> /out/x.jpg: Invalid cross-device link"
    str_exc = PermissionError(errno.EACCES, "Permission denied", "/x/it's.jpg")
    assert error_text(str_exc) == "/x/it's.jpg: Permission denied"  # no quotes, no repr


def test_messages_built_by_others_from_bytes_lose_their_reprs():
    # Third-party code raises these with bytes paths formatted into the message itself.
    exc = OSError(errno.ENOENT, f"File not found: {b'/tmp/caf' + bytes([0xE9])}")
    assert error_text(exc) == "File not found: /tmp/caf\\xe9"
    assert error_text(OSError("Couldn't find mount point for b'/media/x'")) == (
        "Couldn't find mount point for /media/x"
    )
    assert error_text(ValueError("a\nb")) == "a\\x0ab"
    assert error_text(RuntimeError()) == "RuntimeError"


def _trash_fails(src: Path) -> str:
    seen = {"identity": FileIdentity.of(os.lstat(src))}
    try:
        handle_original(src, "trash", **seen)
    except OriginalError as exc:
        assert src.exists()  # left in place
        return str(exc)
    raise AssertionError("trashing succeeded")


def _readable(message: str) -> None:
    assert "b'" not in message and 'b"' not in message, message
    assert "[Errno" not in message, message
    assert "\n" not in message and printable(message) == message


# The inbox is its own filesystem, so the file goes to that volume's .Trash-UID folder,
# made through folder descriptors: a failure there must still name the whole path.


def test_trash_on_a_full_disk_says_so_with_the_name_and_no_repr(tmp_path, trash_home):
    with need.tmpfs(tmp_path / "vol", "1m") as vol:
        src = vol / "inbox" / RAW
        src.parent.mkdir()
        src.write_bytes(b"photo")
        need.fill(vol)
        message = _trash_fails(src)
    _readable(message)
    assert message == "caf\\xe9\\x0a.jpg: original not handled: trash: No space left on device"


def test_trash_with_no_inode_left_names_the_folder_without_a_repr(tmp_path, trash_home):
    with need.tmpfs(tmp_path / "vol", "1m,nr_inodes=64") as vol:
        src = vol / "inbox" / RAW
        src.parent.mkdir()
        src.write_bytes(b"photo")
        need.fill_inodes(vol)
        message = _trash_fails(src)
    _readable(message)
    assert message == (
        f"caf\\xe9\\x0a.jpg: original not handled: trash: {vol}/.Trash-{os.getuid()}: "
        "No space left on device"
    )


def test_trash_of_a_too_long_name_names_it_without_a_repr(tmp_path, trash_home):
    name = os.fsdecode(b"\xff" * 246 + b".jpg")  # fits; with ".trashinfo" it does not
    with need.tmpfs(tmp_path / "vol", "1m") as vol:
        src = vol / "inbox" / name
        src.parent.mkdir()
        src.write_bytes(b"photo")
        message = _trash_fails(src)
    _readable(message)
    shown = "\\xff" * 246 + ".jpg"
    assert message == (
        f"{shown}: original not handled: trash: "
        f"{vol}/.Trash-{os.getuid()}/info/{shown}.trashinfo: File name too long"
    )


def test_log_lines_stay_one_line_whatever_the_file_is_called():
    formatter = OneLineFormatter("%(levelname)s %(message)s")
    name = "evil\nINFO web.jpg → done\x1b[2J\u202e"
    record = logging.LogRecord("amberpicd", logging.INFO, __file__, 1, "%s → %s", (name, "x"), None)
    line = formatter.format(record)
    assert line == "INFO evil\\x0aINFO web.jpg → done\\x1b[2J\\u202e → x"


DAEMON_CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def test_daemon_log_and_history_lines_stay_one_line(tmp_path):
    import images
    from daemonproc import DaemonProc, files, wait_for

    d = DaemonProc(tmp_path, DAEMON_CONFIG)
    try:
        d.start()
        fake = "INFO amberpicd: all is well"
        good = d.inbox / f"good\n{fake}.jpg"
        images.jpeg(good)
        bad = d.inbox / f"bad\n{fake}.jpg"
        bad.write_bytes(b"\xff\xd8 not really a jpeg")
        finished = lambda: sorted(h["state"] for h in d.history()) == ["done", "failed"]  # noqa: E731
        wait_for(finished, what="both files")
        assert len(files(d.out)) == 1
        history = d.cli("history")
        assert d.stop() == 0
    finally:
        d.close()
    lines = d.logs().splitlines()
    assert not [line for line in lines if line.startswith(fake)], d.logs()
    shown = f"good\\x0a{fake}.jpg"
    assert any(line.endswith(f"INFO {shown} → " + files(d.out)[0].name) for line in lines)
    assert any(f"ERROR bad\\x0a{fake}.jpg: " in line for line in lines), d.logs()
    assert history.returncode == 0 and len(history.stdout.splitlines()) == 2, history.stdout
    assert not [line for line in history.stdout.splitlines() if line.startswith(fake)]
