"""A fresh journal (deleted, or new) recognises this file's own outputs, and never takes
an identical file's output of the same name as this file's: on the real daemon."""

from __future__ import annotations

import images
from daemonproc import files, wait_for
from test_commitflow import config, daemon, states, temps  # noqa: F401


def _fresh_journal(d) -> None:
    assert d.stop() == 0
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (d.root / "state" / "amberpic" / name).unlink(missing_ok=True)
    d.start()


def test_a_fresh_journal_never_takes_an_identical_files_output_as_its_own(daemon):  # noqa: F811
    d = daemon(config("delete"))
    data = images.jpeg(d.root / "photo.jpg").read_bytes()
    (d.inbox / "a.jpg").write_bytes(data)
    wait_for(lambda: not (d.inbox / "a.jpg").exists() and d.idle(), 30, "a.jpg done")
    assert [p.name for p in files(d.out)] == ["a.png"]
    _fresh_journal(d)
    (d.inbox / "a.jpg").write_bytes(data)  # the same bytes under the same name: a new drop
    wait_for(lambda: not (d.inbox / "a.jpg").exists() and d.idle(), 30, "the new a.jpg done")
    outputs = sorted(p.name for p in files(d.out))
    assert outputs == ["a-1.png", "a.png"], "one drop's original deleted for another's output"
    assert (d.out / "a.png").read_bytes() == (d.out / "a-1.png").read_bytes()
    assert states(d) == ["done"] and not temps(d.out)


def test_a_fresh_journal_still_recognises_a_kept_files_own_output(daemon):  # noqa: F811
    d = daemon(config("keep"))
    images.jpeg(d.inbox / "k.jpg")
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "k.jpg done")
    _fresh_journal(d)
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "the rescan to decide k.jpg")
    assert [p.name for p in files(d.out)] == ["k.png"], "its own output made again as -1"
