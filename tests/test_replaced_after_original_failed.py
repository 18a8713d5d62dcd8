"""An original_failed job whose file was then replaced: the new content is a new file
(processed, its original handled), and the old job stays as history instead of failing
at every retry. Real daemon, real tmpfs for the full archive disk."""

from __future__ import annotations

import os

from daemonproc import files, wait_for
from test_commitflow import config, daemon, noise, states, temps  # noqa: F401
from test_faults import tmpfs


def test_a_file_replaced_after_its_original_failed_is_a_new_file(daemon, tmp_path):  # noqa: F811
    with tmpfs(tmp_path / "archive", "256k") as archive:
        filler = archive / "filler.bin"
        filler.write_bytes(b"\0" * 250_000)
        d = daemon(config("move"))
        src = noise(d.inbox / "IMG_1.png", 200)
        wait_for(lambda: states(d) == ["original_failed"], what="the original step to fail")
        new = noise(tmp_path / "new.png", 120, seed=2)
        newer = new.read_bytes()
        os.rename(new, src)  # replaced: a new file, whose own original step fails too
        wait_for(lambda: states(d) == ["original_failed"] * 2 and d.idle(), 30, "the new job")
        assert sorted(p.name for p in files(d.out)) == ["IMG_1-1.png", "IMG_1.png"]
        filler.unlink()  # room again
        for _ in range(2):  # and a second retry: nothing fails again
            assert d.cli("retry").returncode == 0
            wait_for(lambda: d.idle() and "original_failed" not in states(d), 30, "the retry")
        old, newest = sorted(d.history(), key=lambda h: h["id"])
        assert newest["state"] == "done", newest
        assert old["state"] == "retry", old  # history: superseded, not done, not failing
        assert "no longer the one whose outputs were written" in old["error"]
        assert [p.read_bytes() for p in files(archive)] == [newer] and not src.exists()
        assert sorted(p.name for p in files(d.out)) == ["IMG_1-1.png", "IMG_1.png"]
        assert not temps(archive, d.out)
