"""``amberpicd undo``: the journal remembers what a job did, and undo takes it back.

Real files, real SQLite, ``amberpicd process`` as the job maker (it records in the daemon's
journal exactly as the daemon does), then ``undo`` on the command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import images
import need
import pytest
from clirun import run_cli

from amberpicd.journal import Journal
from amberpicd.paths import state_dir

CONFIG = """
watch:
  - inbox: {root}/inbox
    originals: {originals}
    archive: {archive}
rules:
  - name: web
    pipeline: [{{resize: {{width: 64}}}}, {{encode: webp}}]
    output: {root}/out/{{stem}}.{{ext}}
"""
TWO_RULES = (
    CONFIG
    + """  - name: thumb
    pipeline: [{{resize: {{width: 16}}}}, {{encode: png}}]
    output: {root}/out/thumbs/{{stem}}.{{ext}}
"""
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup(tmp_path: Path, originals: str, text: str = CONFIG, archive: Path | None = None):
    cfg = tmp_path / "config.yaml"
    archive = archive or tmp_path / "archive"
    cfg.write_text(text.format(root=tmp_path, originals=originals, archive=archive))
    (tmp_path / "inbox").mkdir(exist_ok=True)
    src = images.jpeg(tmp_path / "inbox" / "IMG_1.jpg", (200, 150))
    return cfg, src, src.read_bytes()


def process(cfg: Path, src: Path, capsys) -> None:
    code, _, err = run_cli("-c", str(cfg), "process", str(src), capsys=capsys)
    assert code == 0, err


def journal() -> Journal:
    return Journal(state_dir() / "journal.db")


def undo(cfg: Path, *args: str, capsys) -> tuple[int, str, str]:
    return run_cli("-c", str(cfg), "undo", *args, capsys=capsys)


def files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- 1. what the journal remembers ----------------------------------------------------------


@pytest.mark.parametrize("originals", ["keep", "move", "delete"])
def test_the_journal_keeps_each_outputs_hash_and_where_the_original_went(
    tmp_path, capsys, originals
):
    cfg, src, _ = setup(tmp_path, originals, TWO_RULES)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "IMG_1.jpg").write_bytes(b"an older one")  # the name is taken
    process(cfg, src, capsys)
    with journal() as j:
        (job,) = j.recent()
    out = tmp_path / "out"
    assert list(job.outputs) == [out / "IMG_1.webp", out / "thumbs" / "IMG_1.png"]
    assert list(job.output_hashes) == [sha(p) for p in job.outputs]
    if originals == "keep":
        assert job.original == {"fate": "kept", "path": str(src)}
    elif originals == "move":  # the name actually used after the conflict
        assert job.original == {"fate": "moved", "path": str(tmp_path / "archive/IMG_1-1.jpg")}
    else:
        assert job.original == {"fate": "deleted"}


def test_the_journal_keeps_the_trash_name_actually_used(tmp_path, capsys, trash_home):
    cfg, src, _ = setup(tmp_path, "trash")
    (trash_home / "files").mkdir(parents=True)
    (trash_home / "files" / "IMG_1.jpg").write_bytes(b"trashed earlier")
    process(cfg, src, capsys)
    with journal() as j:
        (job,) = j.recent()
    assert job.original == {"fate": "trashed", "trash": "home", "name": "IMG_1 1.jpg"}
    assert (trash_home / "info" / "IMG_1 1.jpg.trashinfo").exists()


# --- 2. undo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("originals", ["keep", "move", "trash"])
@pytest.mark.parametrize("text", [CONFIG, TWO_RULES], ids=["one rule", "two rules"])
def test_undo_removes_the_outputs_and_puts_the_original_back(
    tmp_path, capsys, trash_home, originals, text
):
    cfg, src, original = setup(tmp_path, originals, text)
    process(cfg, src, capsys)
    assert files(tmp_path / "out")
    assert src.exists() == (originals == "keep")
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 0, err
    assert "IMG_1.jpg: undone: removed IMG_1.webp" in out
    assert src.read_bytes() == original  # byte for byte, at its inbox path
    assert files(tmp_path / "out") == []
    assert files(tmp_path / "archive") == []
    assert files(trash_home / "files") == [] and files(trash_home / "info") == []
    assert not [n for n in os.listdir(src.parent) if n.startswith(".amberpic-")]
    with journal() as j:
        (job,) = j.recent()
    assert job.state == "undone"


def test_undo_by_an_output_path_and_json(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    code, out, _ = undo(cfg, "--json", str(tmp_path / "out" / "IMG_1.webp"), capsys=capsys)
    assert code == 0
    (doc,) = [json.loads(line) for line in out.splitlines()]
    assert doc["status"] == "undone" and doc["source"] == str(src)
    assert doc["removed"] == [str(tmp_path / "out" / "IMG_1.webp")]
    assert doc["original"] == "put back from the archive"
    assert src.read_bytes() == original


def test_a_changed_output_is_kept_and_named(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move", TWO_RULES)
    process(cfg, src, capsys)
    edited = tmp_path / "out" / "thumbs" / "IMG_1.png"
    edited.write_bytes(b"the user edited this")
    code, out, _ = undo(cfg, str(src), capsys=capsys)
    assert code == 0
    assert f"IMG_1.jpg: kept {edited}: it changed since it was written" in out
    assert edited.read_bytes() == b"the user edited this"
    assert not (tmp_path / "out" / "IMG_1.webp").exists()
    assert src.read_bytes() == original


def test_a_second_undo_says_there_is_nothing_to_undo(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "move")
    process(cfg, src, capsys)
    assert undo(cfg, str(src), capsys=capsys)[0] == 0
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 0 and "IMG_1.jpg: nothing to undo (undone already)" in out + err
    assert src.exists()


def test_delete_is_refused_and_nothing_is_touched(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "delete")
    process(cfg, src, capsys)
    before = files(tmp_path / "out")
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1
    assert "IMG_1.jpg: cannot undo: the original was deleted (originals: delete)" in err
    assert files(tmp_path / "out") == before == ["IMG_1.webp"]


def test_an_inbox_name_taken_by_another_file_refuses_and_changes_nothing(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    src.write_bytes(b"a new photo under the same name")
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and "IMG_1.jpg in the inbox is another file now" in err
    assert src.read_bytes() == b"a new photo under the same name"
    assert (tmp_path / "archive" / "IMG_1.jpg").read_bytes() == original
    assert files(tmp_path / "out") == ["IMG_1.webp"]
    with journal() as j:
        (job,) = j.recent()
    assert job.state == "done"  # the intent is withdrawn: a later undo may try again


def test_dry_run_says_what_would_happen_and_does_nothing(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "move")
    process(cfg, src, capsys)
    code, out, _ = undo(cfg, "--dry-run", str(src), capsys=capsys)
    assert code == 0 and "IMG_1.jpg: would undo: removed IMG_1.webp" in out
    assert not src.exists() and files(tmp_path / "out") == ["IMG_1.webp"]
    with journal() as j:
        assert j.recent()[0].state == "done"


def test_undo_last_n_takes_the_most_recent_jobs(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "move")
    process(cfg, src, capsys)
    later = images.jpeg(tmp_path / "inbox" / "later.jpg", (100, 80))
    process(cfg, later, capsys)
    code, out, _ = undo(cfg, "--last", "1", capsys=capsys)
    assert code == 0 and "later.jpg: undone" in out
    assert later.exists() and not src.exists()
    assert files(tmp_path / "out") == ["IMG_1.webp"]


def test_undo_from_an_archive_on_another_filesystem(tmp_path, capsys):
    with need.tmpfs(tmp_path / "other", "4m") as other:
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        cfg, src, original = setup(tmp_path, "move", archive=other / "archive")
        process(cfg, src, capsys)
        assert (other / "archive" / "IMG_1.jpg").read_bytes() == original
        code, _, err = undo(cfg, str(src), capsys=capsys)
        assert code == 0, err
        assert src.read_bytes() == original
        assert files(other / "archive") == []
        assert not [n for n in os.listdir(src.parent) if n.startswith(".amberpic-")]


def test_an_undone_file_is_decided_until_it_changes_or_is_retried(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "keep")
    process(cfg, src, capsys)
    assert undo(cfg, str(src), capsys=capsys)[0] == 0
    with journal() as j:
        (job,) = j.recent()
        assert j.decided(src, job.fingerprint, job.content_hash).state == "undone"
        assert [r.source for r in j.retry(src)] == [src]
        assert j.decided(src, job.fingerprint, job.content_hash) is None


def test_an_output_folder_swapped_for_a_symlink_is_never_removed_through(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move", TWO_RULES)
    process(cfg, src, capsys)
    thumbs = tmp_path / "out" / "thumbs"
    elsewhere = tmp_path / "elsewhere"
    thumbs.rename(elsewhere)  # the same bytes, now outside every configured folder
    thumbs.symlink_to(elsewhere)
    code, out, _ = undo(cfg, str(src), capsys=capsys)
    assert code == 0
    assert "IMG_1.png: kept" not in out and "is a symbolic link" in out
    assert (elsewhere / "IMG_1.png").exists()
    assert not (tmp_path / "out" / "IMG_1.webp").exists() and src.read_bytes() == original


def test_an_inbox_folder_swapped_for_a_symlink_refuses_and_changes_nothing(tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path, originals="move", archive=tmp_path / "archive"))
    (tmp_path / "inbox" / "trip").mkdir(parents=True)
    src = images.jpeg(tmp_path / "inbox" / "trip" / "IMG_1.jpg", (200, 150))
    process(cfg, src, capsys)
    assert (tmp_path / "archive" / "trip" / "IMG_1.jpg").exists()
    (tmp_path / "inbox" / "trip").rmdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "inbox" / "trip").symlink_to(tmp_path / "outside")
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and "is a symbolic link" in err
    assert list((tmp_path / "outside").iterdir()) == []
    assert (tmp_path / "archive" / "trip" / "IMG_1.jpg").exists()
    assert files(tmp_path / "out") == ["IMG_1.webp"]


def test_an_output_a_later_job_wrote_again_is_left_to_that_job(tmp_path, capsys):
    from amberpicd.config.loader import load_config
    from amberpicd.engine.undo import undo_job

    cfg, src, _ = setup(tmp_path, "keep", CONFIG + "    on_conflict: overwrite\n")
    process(cfg, src, capsys)
    code, _, err = run_cli("-c", str(cfg), "process", "--force", str(src), capsys=capsys)
    assert code == 0, err
    with journal() as j:
        first, second = sorted(j.recent(), key=lambda job: job.id)
        assert first.outputs == second.outputs  # the same bytes, written again
        report = undo_job(j, load_config(cfg).config, first)
    assert report.status == "undone" and report.removed == []
    assert report.kept == [
        (tmp_path / "out/IMG_1.webp", "also the output of a later job; left in place")
    ]
    assert (tmp_path / "out" / "IMG_1.webp").exists()


def test_a_symlink_at_the_inbox_name_refuses_the_undo(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    target = tmp_path / "elsewhere.jpg"
    target.write_bytes(original)  # even the same bytes behind a link are not the original
    src.symlink_to(target)
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and "IMG_1.jpg in the inbox is another file now" in err
    assert src.is_symlink() and (tmp_path / "archive" / "IMG_1.jpg").read_bytes() == original


def test_history_says_a_file_was_undone(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "move")
    process(cfg, src, capsys)
    assert undo(cfg, str(src), capsys=capsys)[0] == 0
    code, out, _ = run_cli("-c", str(cfg), "history", capsys=capsys)
    assert code == 0
    assert "undone    IMG_1.jpg: outputs removed, original put back" in out


def test_undo_from_the_trash_of_another_volume(tmp_path, capsys, trash_home):
    """An inbox on another filesystem trashes into that volume's own .Trash-$uid: undo
    finds the original there (walked from the inbox's mount) and removes its info."""
    with need.tmpfs(tmp_path / "vol", "4m") as vol:
        cfg = tmp_path / "config.yaml"
        text = CONFIG.replace("{root}/inbox", str(vol / "inbox"))
        cfg.write_text(text.format(root=tmp_path, originals="trash", archive=tmp_path / "a"))
        (vol / "inbox").mkdir()
        src = images.jpeg(vol / "inbox" / "IMG_1.jpg", (200, 150))
        original = src.read_bytes()
        process(cfg, src, capsys)
        volume_trash = vol / f".Trash-{os.getuid()}"
        assert files(volume_trash) == ["files/IMG_1.jpg", "info/IMG_1.jpg.trashinfo"]
        with journal() as j:
            assert j.recent()[0].original["trash"] == f".Trash-{os.getuid()}"
        code, _, err = undo(cfg, str(src), capsys=capsys)
        assert code == 0, err
        assert src.read_bytes() == original and files(volume_trash) == []
        assert files(tmp_path / "out") == []


def test_dry_run_of_an_original_whose_inbox_folder_was_removed_says_what_undo_would_do(
    tmp_path, capsys
):
    """A dropped folder emptied by ``move`` and removed by the user: undo makes it again,
    and the dry run (which makes nothing) must say so, not fail on the missing folder."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path, originals="move", archive=tmp_path / "archive"))
    (tmp_path / "inbox" / "trip").mkdir(parents=True)
    src = images.jpeg(tmp_path / "inbox" / "trip" / "IMG_1.jpg", (200, 150))
    original = src.read_bytes()
    process(cfg, src, capsys)
    (tmp_path / "inbox" / "trip").rmdir()
    code, out, err = undo(cfg, "--dry-run", str(src), capsys=capsys)
    assert code == 0, err
    assert "IMG_1.jpg: would undo: removed IMG_1.webp; original put back from the archive" in out
    assert not (tmp_path / "inbox" / "trip").exists()  # the dry run made nothing
    assert files(tmp_path / "out") == ["IMG_1.webp"]
    code, out, err = undo(cfg, str(src), capsys=capsys)  # control: the real run does it
    assert code == 0, err
    assert "IMG_1.jpg: undone: removed IMG_1.webp; original put back from the archive" in out
    assert src.read_bytes() == original


def test_a_refusal_naming_an_unprintable_folder_is_one_printable_line(tmp_path, capsys):
    """A dropped folder named with a newline and an undecodable byte, swapped for a link:
    the refusal names it escaped, on one line (it used to crash printing a surrogate)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path, originals="move", archive=tmp_path / "archive"))
    sub = tmp_path / "inbox" / os.fsdecode(b"tr\nip\xff")
    sub.mkdir(parents=True)
    src = images.jpeg(sub / "IMG_1.jpg", (200, 150))
    process(cfg, src, capsys)
    sub.rmdir()
    (tmp_path / "outside").mkdir()
    sub.symlink_to(tmp_path / "outside")
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and out == ""
    assert err == (
        "amberpicd: IMG_1.jpg: cannot undo: inbox/tr\\x0aip\\xff is a symbolic link;"
        " refusing to restore through it\n"
    )
    code, out, _ = undo(cfg, "--json", str(src), capsys=capsys)
    (doc,) = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and doc["status"] == "refused" and "\n" not in doc["error"]
    assert list((tmp_path / "outside").iterdir()) == []


def test_json_has_one_object_per_file_also_for_a_file_no_job_processed(tmp_path, capsys):
    cfg, src, _ = setup(tmp_path, "move")
    process(cfg, src, capsys)
    never = tmp_path / "inbox" / "never.jpg"
    code, out, err = undo(cfg, "--json", str(never), str(src), capsys=capsys)
    assert code == 1  # as without --json: a file could not be undone
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["source"], d["status"]) for d in docs] == [
        (str(never), "nothing"),
        (str(src), "undone"),
    ]
    assert docs[0]["error"] == "never.jpg: nothing to undo: no job processed it"
    assert "never.jpg: nothing to undo: no job processed it" in err


def test_undo_last_with_a_count_larger_than_the_history_undoes_all_of_it(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    code, out, err = undo(cfg, "--last", str(10**30), capsys=capsys)  # beyond SQLite's integers
    assert code == 0, err
    assert "IMG_1.jpg: undone" in out and src.read_bytes() == original
    code, _, err = undo(cfg, "--last", "5", capsys=capsys)
    assert code == 1 and "nothing to undo: no job done yet" in err


def test_two_undos_of_one_file_at_once_undo_it_once(tmp_path, capsys, monkeypatch):
    """A second ``amberpicd undo`` (a real process) runs while the first is between its
    steps: it must not run the same steps beside it (it took the first's "undoing" for an
    interrupted undo and finished it, so the first then failed on the journal; in the
    narrower interleavings one withdrew the undo while the other put the original back)."""
    from amberpicd.engine import undo as engine

    cfg, src, original = setup(tmp_path, "move", TWO_RULES)
    process(cfg, src, capsys)
    second: list[subprocess.CompletedProcess[str]] = []

    def meanwhile(step: str) -> None:
        if step == "undo:begun":
            command = [sys.executable, "-m", "amberpicd", "-c", str(cfg), "undo", str(src)]
            second.append(subprocess.run(command, capture_output=True, text=True, timeout=60))

    monkeypatch.setattr(engine, "crash_point", meanwhile)
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 0, err
    assert "IMG_1.jpg: undone: removed IMG_1.webp, IMG_1.png" in out
    (other,) = second
    assert other.returncode == 1 and other.stdout == ""
    assert other.stderr == (
        "amberpicd: IMG_1.jpg: undo not done: another undo is under way; try again when it ends\n"
    )
    assert src.read_bytes() == original
    assert files(tmp_path / "out") == [] and files(tmp_path / "archive") == []
    with journal() as j:
        assert [job.state for job in j.recent()] == ["undone"]
    code, out, err = undo(cfg, str(src), capsys=capsys)  # control: the lock is free again
    assert code == 0 and "nothing to undo (undone already)" in out + err


@pytest.mark.parametrize("how", ["edited", "a symlink to its bytes"])
def test_an_archived_original_changed_since_is_refused_saying_so(tmp_path, capsys, how):
    """The archive's file is there but is not the original any more: undo refuses with
    nothing changed, and says so (it said the original was no longer in the archive)."""
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    archived = tmp_path / "archive" / "IMG_1.jpg"
    if how == "edited":
        archived.write_bytes(original + b"edited")
    else:
        (tmp_path / "elsewhere.jpg").write_bytes(original)
        archived.unlink()
        archived.symlink_to(tmp_path / "elsewhere.jpg")
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and out == ""
    assert err == (
        f"amberpicd: IMG_1.jpg: cannot undo: the original in the archive ({archived})"
        " is another file now\n"
    )
    assert not src.exists() and files(tmp_path / "out") == ["IMG_1.webp"]
    archived.unlink()  # control: gone, it is said to be gone
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and "the original is no longer in the archive" in err


def test_an_output_an_earlier_job_also_wrote_is_kept_and_said_so(tmp_path, capsys):
    """The same photo dropped again under its name after the first was archived: both
    jobs hold the one output. Undoing the newer keeps it for the older, and says it is an
    earlier job's (it said "a later job")."""
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    src.write_bytes(original)  # dropped again, the same bytes
    process(cfg, src, capsys)
    with journal() as j:
        first, second = sorted(j.recent(), key=lambda job: job.id)
    assert first.outputs == second.outputs == (tmp_path / "out" / "IMG_1.webp",)
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 0, err
    output = tmp_path / "out" / "IMG_1.webp"
    assert f"IMG_1.jpg: kept {output}: also the output of an earlier job; left in place" in out
    assert output.exists() and src.read_bytes() == original
    assert files(tmp_path / "archive") == ["IMG_1.jpg"]  # the first job's original stays


def test_an_archived_original_swapped_after_its_check_is_not_put_back(
    tmp_path, capsys, monkeypatch
):
    """Another file renamed over the archive's name between undo's content check and its
    move back (a sync tool, a hand): what goes back must be the inode checked. It put the
    newcomer in the inbox as the original and removed the outputs."""
    from amberpicd.engine import restore

    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    archived = tmp_path / "archive" / "IMG_1.jpg"
    checked = restore._archived

    def then_swapped(*args, **kwargs):
        found = checked(*args, **kwargs)
        newcomer = tmp_path / "archive" / "newcomer.jpg"
        newcomer.write_bytes(b"x" * len(original))
        newcomer.rename(archived)
        return found

    monkeypatch.setattr(restore, "_archived", then_swapped)
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1, "a file other than the original was put back"
    assert "IMG_1.jpg: cannot undo: the original changed while being put back" in err
    assert not src.exists() and archived.read_bytes() == b"x" * len(original)
    assert files(tmp_path / "out") == ["IMG_1.webp"]


def test_a_lock_that_cannot_be_opened_fails_the_undo_with_nothing_changed(tmp_path, capsys):
    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    (state_dir() / "undo.lock").mkdir()  # not a file: it cannot be opened for the lock
    code, out, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and out == ""
    assert err == "amberpicd: IMG_1.jpg: undo: journal: undo.lock: Is a directory\n"
    assert not src.exists() and files(tmp_path / "out") == ["IMG_1.webp"]
    (state_dir() / "undo.lock").rmdir()  # control: with the lock openable, it is undone
    assert undo(cfg, str(src), capsys=capsys)[0] == 0 and src.read_bytes() == original


def test_pruning_the_journal_keeps_an_undo(tmp_path, capsys):
    """An undone job with a later job of the same file, name and rules (the same photo
    dropped again, its newer job left done): pruning dropped the undone one as superseded,
    and with it the decision that keeps the daemon off the restored original."""
    from amberpicd.config.loader import load_config
    from amberpicd.engine.undo import undo_job

    cfg, src, original = setup(tmp_path, "move")
    process(cfg, src, capsys)
    src.write_bytes(original)  # dropped again, the same bytes
    process(cfg, src, capsys)
    with journal() as j:
        first, second = sorted(j.recent(), key=lambda job: job.id)
        assert undo_job(j, load_config(cfg).config, first).status == "undone"
        assert src.read_bytes() == original
        assert j.decided(src, first.fingerprint, first.content_hash).state == "undone"
        j.prune(keep_days=0)
        held = j.decided(src, first.fingerprint, first.content_hash)
        assert held is not None and held.state == "undone", "the undone original is due again"
        assert j.get(second.id).state == "done"  # control: the prune ran, the newer job stays


def test_undo_onto_a_full_disk_loses_nothing_and_finishes_once_there_is_room(tmp_path, capsys):
    """The inbox on a full tmpfs, the archive on another filesystem: the copy back cannot
    be written. The archive's original and the outputs stay, no temp is left in the inbox,
    and the next undo (with room made) puts the original back byte for byte."""
    with need.tmpfs(tmp_path / "vol", "1m") as vol:
        cfg = tmp_path / "config.yaml"
        text = CONFIG.replace("{root}/inbox", str(vol / "inbox"))
        cfg.write_text(text.format(root=tmp_path, originals="move", archive=tmp_path / "archive"))
        (vol / "inbox").mkdir()
        src = images.jpeg(vol / "inbox" / "IMG_1.jpg", (600, 400))
        original = src.read_bytes()
        process(cfg, src, capsys)
        filler = vol / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the volume to the last block
            while os.write(fd, b"x" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        code, out, err = undo(cfg, str(src), capsys=capsys)
        assert code == 1 and out == ""
        assert err == (
            "amberpicd: IMG_1.jpg: undo not finished: No space left on device;"
            " `amberpicd undo` again finishes it\n"
        )
        assert (tmp_path / "archive" / "IMG_1.jpg").read_bytes() == original
        assert os.listdir(vol / "inbox") == [] and files(tmp_path / "out") == ["IMG_1.webp"]
        filler.unlink()
        code, out, err = undo(cfg, str(src), capsys=capsys)
        assert code == 0, err
        assert src.read_bytes() == original and files(tmp_path / "archive") == []
        assert files(tmp_path / "out") == []


def test_an_emptied_trash_refuses_the_undo_and_keeps_the_outputs(tmp_path, capsys, trash_home):
    cfg, src, _ = setup(tmp_path, "trash")
    process(cfg, src, capsys)
    for folder in ("files", "info"):
        for p in (trash_home / folder).iterdir():
            p.unlink()
    code, _, err = undo(cfg, str(src), capsys=capsys)
    assert code == 1 and "IMG_1.jpg: cannot undo: the original is no longer in the trash" in err
    assert not src.exists() and files(tmp_path / "out") == ["IMG_1.webp"]
    with journal() as j:
        assert j.recent()[0].state == "done"  # withdrawn: nothing was changed
