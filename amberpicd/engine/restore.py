"""Putting an original back at its inbox path, for undo (engine/undo.py), and the
helpers undo's steps share: the content check and the hidden names of a step under way.

From the archive: a rename when it is on the inbox's filesystem, else a copy written and
fsynced under a hidden name in the inbox, linked in without clobbering, then the archive's
file removed (only while it is the file copied). From the freedesktop trash: the same, then
its ``.trashinfo`` removed (only the one naming this original). Never over a file: a name
taken is a refusal, with nothing changed. Each step is idempotent (a crash's leftovers are
found again by their fixed hidden names and tidied by the next run).

May touch: the inbox folder of the original, the archive folder or trash it is in. Every
folder is a descriptor walked from a configured root without following links.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
from pathlib import Path
from urllib.parse import unquote_to_bytes

from amberpicd.config.schema import Config
from amberpicd.engine.commit import crash_point
from amberpicd.engine.originals import aside_name
from amberpicd.errors import printable
from amberpicd.fs.confined import DirHandle, open_dir, within
from amberpicd.fs.copy import copy_new, unlink_if_same
from amberpicd.fs.names import give_back, name_choices
from amberpicd.fs.trash import HOME, trash_folders
from amberpicd.journal import Job
from amberpicd.output.writer import TEMP_PREFIX, TEMP_SUFFIX

_SEARCH = 100  # names tried (IMG_1.jpg, IMG_1-1.jpg ...) for an original whose place is unknown


class Refused(Exception):
    """Undo cannot be done; nothing was changed. ``str()`` is the user's line."""


def digest(folder: DirHandle, name: str) -> str | None:
    """The sha256 of the regular file ``name`` in ``folder`` (None: not one, e.g. a link)."""
    found = _hashed(folder, name)
    return found[0] if found else None


def _hashed(folder: DirHandle, name: str) -> tuple[str, os.stat_result] | None:
    """The sha256 of the regular file ``name`` and the stat of the very inode hashed."""
    try:
        fd = folder.open_read(name)
    except OSError:  # gone, a symbolic link (O_NOFOLLOW), unreadable: not the file wanted
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest(), st
    finally:
        os.close(fd)


def _holding(folder: DirHandle, name: str, want: str) -> os.stat_result | None:
    found = _hashed(folder, name)
    return found[1] if found and found[0] == want else None


def hidden(kind: str, name: str) -> str:
    """A hidden name (the watcher and scans skip it) for ``name`` mid-step; the same one
    every time, so a crash's leftover is found by the next run."""
    return f"{TEMP_PREFIX}{kind}-{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}{TEMP_SUFFIX}"


def _inbox_folder(job: Job, roots: set[Path], create: bool) -> tuple[DirHandle, bool]:
    """The folder the original goes back to, and whether it is there. Not made (a dry
    run, or a kept original), a missing one is stood in for by its deepest existing parent
    (walked the same way; on the same volume, for the trash): the name is then free."""
    inbox = job.inbox or job.source.parent
    top, below = within(inbox, roots | {inbox})
    want = below / job.source.parent.relative_to(inbox)
    rel = want
    while True:
        try:
            return open_dir(top, rel, create=create, verb="restore"), rel == want
        except FileNotFoundError:
            if create or not rel.parts:
                raise
            rel = rel.parent


def restore(
    job: Job, fate: dict, config: Config, roots: set[Path], *, dry_run: bool, resuming: bool
) -> str | None:
    """Put the original back at its inbox path; returns how it came back."""
    name, shown = job.source.name, printable(job.source.name)
    inbox, there = _inbox_folder(job, roots, create=not dry_run and fate["fate"] != "kept")
    with inbox:
        if there and inbox.lstat(name) is not None:
            if digest(inbox, name) != job.content_hash:
                raise Refused(
                    f"{shown}: cannot undo: {shown} in the inbox is another file now;"
                    " move it away and undo again"
                )
            if resuming:  # the move back was done; what an interruption left is tidied
                _tidy(job, fate, config, roots, inbox)
            return None if fate["fate"] == "kept" else "already there"
        if fate["fate"] == "kept":
            raise Refused(f"{shown}: cannot undo: the original is no longer in the inbox")
        if fate["fate"] == "moved":
            src, src_name, st = _archived(job, fate, config, roots)
            info = None
            how = "put back from the archive"
        else:
            src, src_name, st, info = _trashed(job, fate, inbox)
            how = "put back from the trash"
        try:  # what goes back is the inode whose content was checked (st), or nothing
            if not dry_run:
                _bring_back(src, src_name, st, inbox, name, job.content_hash)
                if fate["fate"] == "trashed":
                    _drop_info(info, src_name + ".trashinfo", job.source)
        finally:
            src.close()
            if fate["fate"] == "trashed":
                info.close()
        return how


def _tidy(job: Job, fate: dict, config: Config, roots: set[Path], inbox: DirHandle) -> None:
    """After an interrupted undo put the original back: the archive's copy a cross-device
    move had not removed yet, or the trash's info left behind."""
    try:
        if fate["fate"] == "moved":
            src, src_name, st = _archived(job, fate, config, roots)
            with src:
                unlink_if_same(src, src_name, st, aside_name(src_name))
        elif fate["fate"] == "trashed" and fate.get("name"):
            files, info = trash_folders(inbox, fate["trash"])
            with files, info:
                if files.lstat(fate["name"]) is None:
                    _drop_info(info, fate["name"] + ".trashinfo", job.source)
    except (Refused, FileNotFoundError):
        pass  # nothing left to tidy


def _archived(
    job: Job, fate: dict, config: Config, roots: set[Path]
) -> tuple[DirHandle, str, os.stat_result]:
    """The archive folder and name holding the original, and the stat of the file checked."""
    shown = printable(job.source.name)
    if fate.get("path"):
        path = Path(fate["path"])
        candidates = [path.name]
    else:  # not recorded: the names the move would have taken, in its archive folder
        watch = config.watch_for(job.source)
        if watch is None or watch.archive is None or job.inbox is None:
            raise Refused(f"{shown}: cannot undo: the journal does not say where it was moved")
        path = watch.archive / job.source.parent.relative_to(job.inbox) / job.source.name
        candidates = list(itertools.islice(name_choices(job.source.name), _SEARCH))
    gone = (
        f"{shown}: cannot undo: the original is no longer in the archive ({printable(str(path))})"
    )
    top, below = within(path.parent, roots | {path.parent})
    try:
        folder = open_dir(top, below, verb="restore")
    except (FileNotFoundError, NotADirectoryError):
        raise Refused(gone) from None
    for candidate in candidates:
        if (st := _holding(folder, candidate, job.content_hash)) is not None:
            return folder, candidate, st
    there = fate.get("path") and folder.lstat(path.name) is not None
    folder.close()
    if there:  # the name recorded holds something else: said as such, not as gone
        raise Refused(
            f"{shown}: cannot undo: the original in the archive ({printable(str(path))})"
            " is another file now"
        )
    raise Refused(gone)


def _trashed(
    job: Job, fate: dict, inbox: DirHandle
) -> tuple[DirHandle, str, os.stat_result, DirHandle]:
    """The trash's ``files`` folder, the name holding the original and the stat of the file
    checked, and the trash's ``info``."""
    shown = printable(job.source.name)
    if fate.get("name"):
        places = [(fate["trash"], [fate["name"]])]
    else:  # not recorded: the names trash() tries, in the home trash, then the volume's
        stem, ext = os.path.splitext(job.source.name)
        names = [job.source.name] + [f"{stem} {n}{ext}" for n in range(1, _SEARCH)]
        places = [(HOME, names), (f".Trash-{os.getuid()}", names)]
    for where, names in places:
        try:
            files, info = trash_folders(inbox, where)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for candidate in names:
            if (st := _holding(files, candidate, job.content_hash)) is not None:
                return files, candidate, st, info
        files.close()
        info.close()
    raise Refused(f"{shown}: cannot undo: the original is no longer in the trash")


def _drop_info(info: DirHandle, name: str, source: Path) -> None:
    """Remove the trash's info file, if it is the one naming ``source``."""
    try:
        fd = info.open_read(name)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as f:
        text = f.read(1 << 16)
    for line in text.splitlines():
        if line.startswith(b"Path=") and unquote_to_bytes(line[5:]) == os.fsencode(source):
            info.unlink(name, missing_ok=True)
            info.fsync()
            return


def _bring_back(
    src: DirHandle, src_name: str, st: os.stat_result, inbox: DirHandle, name: str, want: str
) -> None:
    """Move ``src_name`` to ``name`` in the inbox, never over a file there; across
    filesystems a durable copy is linked in before the source is removed."""
    shown = printable(name)
    try:
        src.rename_noreplace(src_name, inbox, name)
    except FileExistsError:
        raise Refused(f"{shown}: cannot undo: {shown} in the inbox was taken meanwhile") from None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_back(src, src_name, st, inbox, name, want)
        return
    now = inbox.lstat(name)
    if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        give_back(inbox, name, src, src_name)  # another file was renamed over it: not ours
        raise Refused(f"{shown}: cannot undo: the original changed while being put back")
    inbox.fsync()
    src.fsync()


def _copy_back(
    src: DirHandle, src_name: str, st: os.stat_result, inbox: DirHandle, name: str, want: str
) -> None:
    shown = printable(name)
    temp = hidden("restoring", name)
    inbox.unlink(temp, missing_ok=True)  # an interrupted copy's
    fd_in = src.open_read(src_name)
    try:
        if (os.fstat(fd_in).st_dev, os.fstat(fd_in).st_ino) != (st.st_dev, st.st_ino):
            raise Refused(f"{shown}: cannot undo: the original changed while being put back")
        digest = hashlib.sha256()  # the bytes put back must be those the journal knows
        copy_new(fd_in, st, inbox, temp, digest=digest)
    finally:
        os.close(fd_in)
    if digest.hexdigest() != want:
        inbox.unlink(temp, missing_ok=True)
        raise Refused(f"{shown}: cannot undo: the original changed while being put back")
    crash_point("undo:copied")
    try:
        inbox.link_noreplace(temp, inbox, name)
    except FileExistsError:
        inbox.unlink(temp, missing_ok=True)
        raise Refused(f"{shown}: cannot undo: {shown} in the inbox was taken meanwhile") from None
    inbox.unlink(temp, missing_ok=True)
    inbox.fsync()
    crash_point("undo:linked")
    unlink_if_same(src, src_name, st, aside_name(src_name))
