"""An original_failed job whose file was then replaced by the very same bytes (a new inode:
a copy put back over it): it is still that job's original, so `retry` moves it, with no
second output and no failure at every retry. Real daemon, real tmpfs for the full archive."""

from __future__ import annotations

import os
import shutil

from daemonproc import files, wait_for
from test_commitflow import config, daemon, noise, states, temps  # noqa: F401
from test_faults import tmpfs


def test_original_failed_then_replaced_by_the_same_bytes_is_retried_once(daemon, tmp_path):  # noqa: F811
    with tmpfs(tmp_path / "archive", "256k") as archive:
        filler = archive / "filler.bin"
        filler.write_bytes(b"\0" * 250_000)
        d = daemon(config("move"))
        src = noise(d.inbox / "IMG_1.png", 200)
        original = src.read_bytes()
        wait_for(lambda: states(d) == ["original_failed"], what="the original step to fail")
        inode = os.stat(src).st_ino
        shutil.copyfile(src, d.inbox / ".IMG_1.png.part")
        os.rename(d.inbox / ".IMG_1.png.part", src)  # the same bytes, a new inode
        assert os.stat(src).st_ino != inode  # control: another file now
        wait_for(lambda: "IMG_1.png: already processed" in d.logs(), 30, "the new inode seen")
        wait_for(d.idle)
        filler.unlink()  # room again
        assert d.cli("retry").returncode == 0
        wait_for(lambda: d.idle() and states(d) == ["done"], 30, "the retry")
        assert [p.read_bytes() for p in files(archive)] == [original] and not src.exists()
        assert sorted(p.name for p in files(d.out)) == ["IMG_1.png"]
        assert not temps(archive, d.out)
