"""``duplicates: skip`` hands a copy the originals policy because the first copy's outputs
hold its content. Once those outputs are gone (the user deleted one, another file's job
overwrote it), a copy deleted as a duplicate would leave its photo nowhere. Real daemon."""

from __future__ import annotations

import shutil

import images
import pytest
from daemonproc import files, wait_for
from test_commitflow import daemon, states  # noqa: F401

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: delete
    duplicates: skip
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
    on_conflict: overwrite
"""


@pytest.mark.parametrize("how", ["deleted", "overwritten"])
def test_a_copy_is_no_duplicate_once_the_first_copys_output_is_gone(daemon, tmp_path, how):  # noqa: F811
    d = daemon(CONFIG, start=False)
    d.inbox.mkdir()
    d.start()
    photo = images.jpeg(tmp_path / "photo.jpg", (64, 48)).read_bytes()
    (d.inbox / "IMG_1.jpg").write_bytes(photo)
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "IMG_1 done")
    assert not (d.inbox / "IMG_1.jpg").exists() and (d.out / "IMG_1.png").exists()
    if how == "deleted":  # the user did not want that output
        (d.out / "IMG_1.png").unlink()
    else:  # another picture under the same name took it (on_conflict: overwrite)
        (tmp_path / "other").mkdir()
        other = images.jpeg(tmp_path / "other" / "IMG_1.jpg", (48, 64))
        shutil.copyfile(other, d.inbox / ".IMG_1.jpg.part")
        (d.inbox / ".IMG_1.jpg.part").rename(d.inbox / "IMG_1.jpg")
        wait_for(lambda: states(d) == ["done", "done"] and d.idle(), 30, "the other done")
    (d.inbox / "IMG_1 (1).jpg").write_bytes(photo)  # the same photo, downloaded again
    wait_for(lambda: not (d.inbox / "IMG_1 (1).jpg").exists() and d.idle(), 30, "the copy")
    assert "IMG_1 (1).jpg: duplicate of" not in d.logs(), "a copy of content with no output"
    copy = d.out / "IMG_1 (1).png"
    assert copy.exists(), "the photo's content is nowhere: its copy deleted as a duplicate"
    first = d.out / "IMG_1.png"
    if how == "overwritten":  # control: the output really holds another picture now
        assert first.read_bytes() != copy.read_bytes()


def test_a_copy_is_a_duplicate_while_the_first_copys_output_holds_it(daemon, tmp_path):  # noqa: F811
    """Control: with the first copy's output intact the copy is a duplicate, as documented."""
    d = daemon(CONFIG, start=False)
    d.inbox.mkdir()
    d.start()
    photo = images.jpeg(tmp_path / "photo.jpg", (64, 48)).read_bytes()
    (d.inbox / "IMG_1.jpg").write_bytes(photo)
    wait_for(lambda: states(d) == ["done"] and d.idle(), 30, "IMG_1 done")
    (d.inbox / "IMG_1 (1).jpg").write_bytes(photo)
    wait_for(lambda: "IMG_1 (1).jpg: duplicate of IMG_1.jpg" in d.logs(), 30, "the duplicate")
    wait_for(lambda: not (d.inbox / "IMG_1 (1).jpg").exists() and d.idle(), 30, "deleted")
    assert [p.name for p in files(d.out)] == ["IMG_1.png"]
