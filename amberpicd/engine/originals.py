"""What happens to an original once every output is durably written: keep, move, trash,
delete. The original is left in place if it changed since it was read.

The original is reached through its inbox folder's descriptor, walked down from the inbox
root without following links (``amberpicd.fs.confined``), and the archive folder likewise
from the archive root: a sub-folder swapped for a symlink cannot make a move or a delete
act on a file outside the inbox, or put the original outside the archive.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from amberpicd.errors import OriginalError, error_text, printable
from amberpicd.fs.confined import DirHandle, Escape, SymlinkRefused, inbox_of, open_dir, within
from amberpicd.fs.copy import copy_new, unlink_if_same
from amberpicd.fs.identity import FileIdentity, change_time_kept
from amberpicd.fs.names import give_back
from amberpicd.fs.trash import trash
from amberpicd.output.writer import TEMP_PREFIX, TEMP_SUFFIX, place

_VERB = {"move": "move", "trash": "move", "delete": "delete"}


@dataclass(frozen=True)
class Fate:
    """Where an original went, as the journal keeps it for ``undo``: kept (at ``path``),
    moved (to ``path``, the archive name actually used), trashed (in the trash ``trash``,
    as ``name``; None when a crash's rerun found it gone already), deleted."""

    fate: str  # kept | moved | trashed | deleted
    path: Path | None = None
    trash: str | None = None  # fs.trash.Trashed.where
    name: str | None = None  # its name in that trash's files/ folder

    def as_json(self) -> dict[str, str]:
        out = {"fate": self.fate}
        if self.path is not None:
            out["path"] = os.fspath(self.path)
        if self.trash is not None and self.name is not None:
            out["trash"], out["name"] = self.trash, self.name
        return out


def unchanged(
    folder: DirHandle, name: str, st: os.stat_result | None, identity: FileIdentity | None
) -> bool:
    """Is the file now under the original's name the one whose content was processed?
    ``st`` is that name's own entry, from fstatat on its folder's descriptor (a link is
    not followed, so a link put in its place is "changed"). Same inode, size, mtime and
    ctime; or, when that identity moved (a hard link added or removed), the same bytes,
    read through the folder's descriptor. A file with other bytes renamed over it, or
    rewritten with its mtime put back, is not (see fs/identity.py); on FAT, exFAT or FUSE,
    where ctime can be put back too, only the bytes are compared."""
    if identity is None or st is None or not stat.S_ISREG(st.st_mode):
        return False
    if identity.matches(st) and change_time_kept(folder.fd):
        return True  # on FAT or exFAT ctime is settable: there only the bytes tell
    return identity.same_content(st, lambda: folder.open_read(name))


def handle_original(
    path: Path,
    policy: str,
    *,
    archive: Path | None = None,
    relpath: str = "",
    identity: FileIdentity | None,
    roots: Iterable[Path] = (),
) -> Path | None:
    """Apply ``policy`` to ``path``. Returns where the original now is (None if trashed
    or deleted). Raises OriginalError, leaving the original in place, on any problem.
    ``roots`` are every folder the config names: the inbox and the archive are walked
    from the outermost of them that holds each (see ``fs.confined.within``)."""
    fate = place_original(
        path, policy, archive=archive, relpath=relpath, identity=identity, roots=roots
    )
    return fate.path


def place_original(
    path: Path,
    policy: str,
    *,
    archive: Path | None = None,
    relpath: str = "",
    identity: FileIdentity | None,
    roots: Iterable[Path] = (),
) -> Fate:
    """:func:`handle_original`, saying where the original went (what the journal keeps)."""
    if policy == "keep":
        return Fate("kept", path)
    if policy not in _VERB:
        raise OriginalError(path, f"unknown originals policy {policy!r}")
    if policy == "move" and archive is None:
        raise OriginalError(path, "originals: move needs an archive folder")
    inbox, rel = inbox_of(path, relpath)
    roots = {*roots, inbox}
    top, below = within(inbox, roots)
    try:
        with open_dir(top, below / rel, verb=_VERB[policy]) as folder:
            _put_back_aside(folder, path.name, identity)  # a delete a crash cut short
            st = folder.lstat(path.name)
            if st is None and policy in ("trash", "delete"):
                # already done by an earlier, interrupted run
                return Fate("trashed") if policy == "trash" else Fate("deleted")
            if not unchanged(folder, path.name, st, identity):
                raise OriginalError(path, "it changed while being processed; left in place")
            if policy == "move":
                assert archive is not None
                top, below = within(archive, roots)
                moved = _move(folder, path.name, st, (top, below / (relpath or ".")))
                return Fate("moved", moved)
            if policy == "trash":
                trashed = trash(folder, path.name, path, expect=st)
                if trashed is None:
                    raise OriginalError(path, "it changed while being processed; left in place")
                return Fate("trashed", trash=trashed.where, name=trashed.name)
            if not unlink_if_same(folder, path.name, st, aside_name(path.name)):
                raise OriginalError(path, "it changed while being processed; left in place")
            return Fate("deleted")
    except OriginalError:
        raise
    except _Changed:
        raise OriginalError(path, "it changed while being processed; left in place") from None
    except FileNotFoundError as exc:
        if policy in ("trash", "delete") and exc.filename != path.name:
            # its folder is gone: so is the original
            return Fate("trashed") if policy == "trash" else Fate("deleted")
        raise OriginalError(path, "it changed while being processed; left in place") from None
    except Exception as exc:
        raise OriginalError(path, f"{policy}: {_reason(exc)}") from None


class _Changed(Exception):
    """The original was written to while it was being copied to the archive."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, SymlinkRefused | Escape):  # their text names the folder already
        return printable(str(exc))
    return error_text(exc)


def _move(src: DirHandle, name: str, st: os.stat_result, where: tuple[Path, PurePosixPath]) -> Path:
    """Move without ever clobbering a file in the archive; across filesystems the copy
    is made durable before the source is removed. Both folders are descriptors."""
    root, rel = where
    with open_dir(root, rel, create=True, verb="move") as dst:
        wanted = Path(root, rel, name)
        try:
            final = place(src, name, dst, wanted)  # same filesystem: a no-clobber link
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            final = _copy_into(src, name, st, dst, wanted, where)
        dst.fsync()
        # Only the file that was archived leaves the inbox: a new one that took its name
        # meanwhile stays (gone already if a rename stood in for a link).
        unlink_if_same(src, name, st, aside_name(name))
    assert final is not None
    return wanted.with_name(final)


def aside_path(path: Path) -> Path:
    """Where the original ``path`` is while it is being deleted (see fs.copy.unlink_if_same)."""
    return path.with_name(aside_name(path.name))


def aside_name(name: str) -> str:
    """The hidden name an original is moved to just before it is removed (the watcher
    ignores it); named after the original, so a crash's leftover is found again."""
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    return f"{TEMP_PREFIX}deleting-{digest}{TEMP_SUFFIX}"


def _put_back_aside(folder: DirHandle, name: str, identity: FileIdentity | None) -> None:
    """A crash between moving the original aside and removing it left it hidden: removed
    if it is the content processed (its outputs are written), else put back."""
    aside = aside_name(name)
    st = folder.lstat(aside)
    if st is None:
        return
    if folder.lstat(name) is not None and unchanged(folder, aside, st, identity):
        folder.unlink(aside, missing_ok=True)
        folder.fsync()
        return
    give_back(folder, aside, folder, name)  # it stays in the inbox, visible, and is processed


def _copy_into(
    src: DirHandle,
    name: str,
    st: os.stat_result,
    dst: DirHandle,
    wanted: Path,
    where: tuple[Path, PurePosixPath],
) -> str | None:
    """Copy ``name`` durably into ``dst`` under a temp name, then publish it no-clobber.
    The temp is named after the original (two originals copied into one folder at once
    never share one, and a crash's leftover is the next attempt's to replace), and it is
    published only if it still is the file written (not one put in its place)."""
    temp = f"{TEMP_PREFIX}original-{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}"
    temp += Path(name).suffix[:16] + TEMP_SUFFIX
    dst.unlink(temp, missing_ok=True)
    fd_in = src.open_read(name)
    try:
        if (os.fstat(fd_in).st_dev, os.fstat(fd_in).st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.ESTALE, "the original was replaced while being moved", name)
        written = copy_new(fd_in, st, dst, temp)
        if not FileIdentity.of(st).matches(os.fstat(fd_in)):  # rewritten in place
            dst.unlink(temp, missing_ok=True)  # meanwhile: the copy may mix versions, and
            raise _Changed(name)  # the version now in the inbox is one no output was made from
    finally:
        os.close(fd_in)
    try:
        now = dst.lstat(temp)
        if now is None or (now.st_dev, now.st_ino) != (written.st_dev, written.st_ino):
            raise OSError(errno.ESTALE, "the archive copy was replaced before publishing", temp)
        _still_in_archive(dst, where)
        return place(dst, temp, dst, wanted)
    finally:
        dst.unlink(temp, missing_ok=True)


def _still_in_archive(dst: DirHandle, where: tuple[Path, PurePosixPath]) -> None:
    """The copy took a while: is ``dst`` still the folder the archive's walk reaches, or
    was it moved out of the archive meanwhile (the original would follow it)?"""
    b = os.fstat(dst.fd)
    try:
        with open_dir(*where, verb="move") as again:
            a = os.fstat(again.fd)
    except FileNotFoundError:
        a = None
    if a is None or (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        raise OSError(errno.ESTALE, "moved out of the archive during the copy", dst.label)
