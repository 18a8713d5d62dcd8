"""Move a file into a freedesktop trash through directory descriptors, never by path.

The file is renamed from its folder's descriptor (walked from the inbox root without
following links) into a trash's ``files`` folder, after its ``.trashinfo`` was created
exclusively in ``info``, as the trash specification orders. The trash is the home trash
(``$XDG_DATA_HOME/Trash``) when that is on the file's filesystem, else the volume's own
(``$topdir/.Trash/$uid`` when ``.Trash`` is a sticky folder, else ``$topdir/.Trash-$uid``),
whose folders are walked down from the mount point without following links; no path is
resolved again after the walk.

The specification's few details (where the home trash is, the ``.trashinfo`` text) are
written here rather than taken from send2trash: importing that package loads GIO wherever
PyGObject is installed (it is, for the tray), and it reads ``XDG_DATA_HOME`` only once, at
import.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from amberpicd.fs.confined import DirHandle, mount_root, open_below, open_dir
from amberpicd.fs.names import give_back
from amberpicd.paths import trash_dir

_INFO_SUFFIX = ".trashinfo"
HOME = "home"  # Trashed.where of the home trash


@dataclass(frozen=True)
class Trashed:
    """Where a file went in a trash (what undo needs to take it out again)."""

    where: str  # HOME, or the trash folder below the volume's top (".Trash-1000")
    name: str  # its name in the trash's ``files`` folder; the info is ``name + ".trashinfo"``

    @property
    def info(self) -> str:
        return self.name + _INFO_SUFFIX


def trash(
    folder: DirHandle, name: str, path: Path, expect: os.stat_result | None = None
) -> Trashed | None:
    """Trash ``name`` in ``folder`` (shown to users as ``path``); returns where it went.
    With ``expect``, only that inode: another file renamed over the name since it was
    checked is given back (the rename into the trash takes whatever holds the name), and
    None is returned."""
    dev = os.fstat(folder.fd).st_dev
    files, info = _trash_folders(open_dir, trash_dir())
    with files, info:
        if os.fstat(files.fd).st_dev == dev:
            try:
                used = _move_in(folder, name, files, info, info_for(path), expect)
                return Trashed(HOME, used) if used else None
            except OSError as exc:
                if exc.errno != errno.EXDEV:  # one disk, two mounts: the volume's trash
                    raise
    # The volume's own trash, below the top of the file's filesystem as reached from its
    # folder's descriptor; the info then names the file by its absolute path.
    with mount_root(folder) as mount:
        files, info, where = _volume_trash(mount, os.getuid())
    with files, info:
        used = _move_in(folder, name, files, info, info_for(path), expect)
        return Trashed(where, used) if used else None


def trash_folders(folder: DirHandle, where: str) -> tuple[DirHandle, DirHandle]:
    """The ``files`` and ``info`` folders of the trash ``where`` (a ``Trashed.where``) as
    seen from a file's ``folder``: walked as ``trash`` walked them, nothing created."""
    if where == HOME:
        return _trash_folders(open_dir, trash_dir(), create=False)
    with mount_root(folder) as mount:
        return _trash_folders(open_below, mount, where, create=False)


def info_for(path: Path, when: datetime | None = None) -> str:
    """The ``.trashinfo`` text for ``path`` deleted at ``when``: its absolute path, each
    byte outside the URL-safe set percent-encoded (the specification's "Path" key, which
    the absolute form always satisfies), and the local time without a zone."""
    quoted = quote(os.fsencode(os.path.abspath(path)), safe=b"/")
    when = when or datetime.now()
    return f"[Trash Info]\nPath={quoted}\nDeletionDate={when:%Y-%m-%dT%H:%M:%S}\n"


def _trash_folders(opener, root, rel: str = "", create: bool = True) -> tuple[DirHandle, DirHandle]:
    """``files`` and ``info`` below ``root``/``rel``, made 0700 where missing."""
    files = opener(root, PurePosixPath(rel, "files"), create=create, verb="move", mode=0o700)
    try:
        info = opener(root, PurePosixPath(rel, "info"), create=create, verb="move", mode=0o700)
        return files, info
    except BaseException:
        files.close()
        raise


def _volume_trash(mount: DirHandle, uid: int) -> tuple[DirHandle, DirHandle, str]:
    """The volume trash below ``mount``: the shared ``.Trash/$uid`` where the admin made
    ``.Trash`` a sticky folder (a link there does not count), else ``.Trash-$uid``."""
    st = mount.lstat(".Trash")
    if st is not None and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        try:
            return (*_trash_folders(open_below, mount, f".Trash/{uid}"), f".Trash/{uid}")
        except OSError:
            pass  # not usable by us: the specification falls back to .Trash-$uid
    return (*_trash_folders(open_below, mount, f".Trash-{uid}"), f".Trash-{uid}")


def _move_in(
    folder: DirHandle,
    name: str,
    files: DirHandle,
    info: DirHandle,
    text: str,
    expect: os.stat_result | None,
) -> str | None:
    stem, ext = os.path.splitext(name)
    for counter in range(10_000):
        dest = name if counter == 0 else f"{stem} {counter}{ext}"
        if files.lstat(dest) is not None:
            continue
        try:
            fd = info.open_new(dest + _INFO_SUFFIX, 0o600)
        except FileExistsError:
            continue
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            folder.rename_noreplace(name, files, dest)
        except BaseException as exc:
            info.unlink(dest + _INFO_SUFFIX, missing_ok=True)
            if isinstance(exc, FileExistsError):
                continue
            raise
        now = files.lstat(dest)
        if expect is not None and (
            now is None or (now.st_dev, now.st_ino) != (expect.st_dev, expect.st_ino)
        ):
            give_back(files, dest, folder, name)
            info.unlink(dest + _INFO_SUFFIX, missing_ok=True)
            return None
        info.fsync()
        files.fsync()
        folder.fsync()
        return dest
    raise FileExistsError(errno.EEXIST, "no free name in the trash", name)
