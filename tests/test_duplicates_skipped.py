"""A job that kept its original because an output was skipped (``on_conflict: skip``, the
name taken): it is decided (read no more on a rescan), and under ``duplicates: skip`` it
is no duplicate target (its content's outputs are not all written). Real daemon."""

from __future__ import annotations

import images
from daemonproc import files, wait_for
from test_commitflow import daemon, states, temps  # noqa: F401
from test_identity_daemon import count_opens, opens, settled_for_cache

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
    duplicates: skip
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
    on_conflict: skip
  - name: thumb
    pipeline: [{{resize: {{width: 16, height: 16}}}}, {{encode: webp}}]
    output: {root}/thumbs/{{stem}}.{{ext}}
"""


def _start(daemon, originals: str, tmp_path):  # noqa: F811
    d = daemon(CONFIG.replace("ORIGINALS", originals), start=False)
    d.inbox.mkdir()
    d.out.mkdir()
    (d.out / "IMG_1.png").write_bytes(b"another photo's output")  # the name is taken
    return d


def test_a_duplicate_of_a_job_with_a_skipped_output_is_processed_not_deleted(daemon, tmp_path):  # noqa: F811
    d = _start(daemon, "delete", tmp_path)
    d.start()
    data = images.jpeg(tmp_path / "photo.jpg").read_bytes()
    (d.inbox / "IMG_1.jpg").write_bytes(data)
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "IMG_1 done")
    assert (d.inbox / "IMG_1.jpg").exists(), "kept: its web output was skipped"
    (d.inbox / "IMG_2.jpg").write_bytes(data)  # the same content under another name
    wait_for(lambda: not (d.inbox / "IMG_2.jpg").exists() and d.idle(), 30, "IMG_2 handled")
    # Its content had no web output anywhere: it gets its own, then is deleted.
    assert (d.out / "IMG_2.png").is_file(), "deleted although its content's output is missing"
    assert (d.root / "thumbs" / "IMG_2.webp").is_file()
    assert "duplicate of" not in d.logs()
    assert (d.out / "IMG_1.png").read_bytes() == b"another photo's output"
    assert (d.inbox / "IMG_1.jpg").exists() and not temps(d.out, d.root / "thumbs")


def test_a_kept_original_with_a_skipped_output_is_read_no_more(daemon, tmp_path):  # noqa: F811
    d = _start(daemon, "move", tmp_path)
    images.jpeg(d.inbox / "IMG_1.jpg")
    settled_for_cache(d.inbox)
    log = tmp_path / "opens.log"
    count_opens(d, log)
    d.start()
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "IMG_1 done")
    assert opens(log) == [str(d.inbox / "IMG_1.jpg")]  # control: read once, by the worker
    assert (d.inbox / "IMG_1.jpg").exists()
    log.unlink()
    assert d.cli("reload").returncode == 0  # a rescan
    wait_for(lambda: d.status()["config"]["generation"] >= 1)
    wait_for(d.idle)
    assert d.stop() == 0
    d.start()  # and a restart's rescan
    wait_for(d.idle)
    assert opens(log) == [], "the kept original was read again"
    assert states(d) == ["done"]
    assert sorted(p.name for p in files(d.root / "thumbs")) == ["IMG_1.webp"]
