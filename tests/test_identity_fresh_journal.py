"""A fresh journal (deleted, or new) recognises this file's own outputs, and never takes
an identical file's output of the same name as this file's: on the real daemon."""

from __future__ import annotations

import images
import pytest
from daemonproc import files, wait_for
from test_commitflow import daemon, states, temps  # noqa: F401

TWO_INBOXES = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
  - inbox: {root}/inbox2
    originals: ORIGINALS
rules:
  - name: fast
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


def _fresh_journal(d) -> None:
    assert d.stop() == 0
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (d.root / "state" / "amberpic" / name).unlink(missing_ok=True)
    d.start()


@pytest.mark.parametrize("fresh", [True, False])  # False: the control, journal intact
def test_an_identical_files_same_named_output_is_never_taken_as_this_files(daemon, fresh):  # noqa: F811
    d = daemon(TWO_INBOXES.replace("ORIGINALS", "delete"), start=False)
    (d.root / "inbox").mkdir()
    (d.root / "inbox2").mkdir()
    d.start()
    data = images.jpeg(d.root / "photo.jpg").read_bytes()
    (d.root / "inbox" / "a.jpg").write_bytes(data)
    wait_for(lambda: not (d.root / "inbox" / "a.jpg").exists() and d.idle(), 30, "a.jpg done")
    assert [p.name for p in files(d.out)] == ["a.png"]
    if fresh:
        _fresh_journal(d)
    (d.root / "inbox2" / "a.jpg").write_bytes(data)  # another file: same bytes, same name
    wait_for(lambda: not (d.root / "inbox2" / "a.jpg").exists() and d.idle(), 30, "a.jpg 2")
    outputs = sorted(p.name for p in files(d.out))
    assert outputs == ["a-1.png", "a.png"], "a file deleted for another file's output"
    assert (d.out / "a.png").read_bytes() == (d.out / "a-1.png").read_bytes()
    assert not temps(d.out)


def test_a_fresh_journal_still_recognises_a_kept_files_own_output(daemon):  # noqa: F811
    d = daemon(TWO_INBOXES.replace("ORIGINALS", "keep"), start=False)
    (d.root / "inbox").mkdir()
    (d.root / "inbox2").mkdir()
    d.start()
    images.jpeg(d.root / "inbox" / "k.jpg")
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "k.jpg done")
    _fresh_journal(d)
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "the rescan to decide k.jpg")
    assert [p.name for p in files(d.out)] == ["k.png"], "its own output made again as -1"
