"""What happens to an original once every output is durably written: keep, move, trash,
delete. The original is left in place if it changed since it was read.

The original is reached through its inbox folder's descriptor, walked down from the inbox
root without following links (``amberpicd.fs.confined``), and the archive folder likewise
from the archive root: a sub-folder swapped for a symlink cannot make a move or a delete
act on a file outside the inbox, or put the original outside the archive.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from amberpicd.errors import OriginalError, error_text, printable
from amberpicd.fs.confined import DirHandle, Escape, SymlinkRefused, open_dir
from amberpicd.fs.trash import trash
from amberpicd.output.writer import TEMP_PREFIX, TEMP_SUFFIX, place

_VERB = {"move": "move", "trash": "move", "delete": "delete"}


def unchanged(st: os.stat_result | None, size: int, mtime_ns: int) -> bool:
    """Is the file now under the original's name the one that was processed? ``st`` is
    that name's own entry, from fstatat on its folder's descriptor (a link is not
    followed, so a link put in its place is "changed")."""
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def inbox_of(path: Path, relpath: str) -> tuple[Path, PurePosixPath]:
    """The inbox root of ``path`` and its sub-folder below it. Callers pass ``relpath``
    as the original's folder below its inbox, so the root is that many folders up; a
    ``relpath`` that is not the folder's tail only names the archive sub-folder, and the
    original's own folder is then the root walked from."""
    rel = PurePosixPath(relpath) if relpath else PurePosixPath()
    n, parts = len(rel.parts), path.parent.parts
    if (
        n
        and ".." not in rel.parts
        and not rel.is_absolute()
        and parts[len(parts) - n :] == rel.parts
    ):
        return path.parents[n], rel
    return path.parent, PurePosixPath()


def handle_original(
    path: Path,
    policy: str,
    *,
    archive: Path | None = None,
    relpath: str = "",
    size: int,
    mtime_ns: int,
) -> Path | None:
    """Apply ``policy`` to ``path``. Returns where the original now is (None if trashed
    or deleted). Raises OriginalError, leaving the original in place, on any problem."""
    if policy == "keep":
        return path
    if policy not in _VERB:
        raise OriginalError(path, f"unknown originals policy {policy!r}")
    if policy == "move" and archive is None:
        raise OriginalError(path, "originals: move needs an archive folder")
    inbox, rel = inbox_of(path, relpath)
    try:
        with open_dir(inbox, rel, verb=_VERB[policy]) as folder:
            st = folder.lstat(path.name)
            if st is None and policy in ("trash", "delete"):
                return None  # already done by an earlier, interrupted run
            if not unchanged(st, size, mtime_ns):
                raise OriginalError(path, "it changed while being processed; left in place")
            if policy == "move":
                assert archive is not None
                return _move(folder, path.name, st, archive, PurePosixPath(relpath or "."))
            if policy == "trash":
                trash(folder, path.name, path)
                return None
            folder.unlink(path.name)
            folder.fsync()
            return None
    except OriginalError:
        raise
    except FileNotFoundError as exc:
        if policy in ("trash", "delete") and exc.filename != path.name:
            return None  # its folder is gone: so is the original
        raise OriginalError(path, "it changed while being processed; left in place") from None
    except Exception as exc:
        raise OriginalError(path, f"{policy}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, SymlinkRefused | Escape):  # their text names the folder already
        return printable(str(exc))
    return error_text(exc)


def _move(src: DirHandle, name: str, st: os.stat_result, archive: Path, rel: PurePosixPath) -> Path:
    """Move without ever clobbering a file in the archive; across filesystems the copy
    is made durable before the source is removed. Both folders are descriptors."""
    with open_dir(archive, rel, create=True, verb="move") as dst:
        wanted = Path(archive, rel, name)
        try:
            final = place(src, name, dst, wanted)  # same filesystem: a no-clobber link
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            final = _copy_into(src, name, st, dst, wanted)
        dst.fsync()
        src.unlink(name, missing_ok=True)  # gone already if a rename stood in for a link
        src.fsync()
    assert final is not None
    return wanted.with_name(final)


def _copy_into(
    src: DirHandle, name: str, st: os.stat_result, dst: DirHandle, wanted: Path
) -> str | None:
    """Copy ``name`` durably into ``dst`` under a temp name, then publish it no-clobber."""
    temp = f"{TEMP_PREFIX}original{Path(name).suffix}{TEMP_SUFFIX}"
    dst.unlink(temp, missing_ok=True)
    fd_in = src.open_read(name)
    try:
        if (os.fstat(fd_in).st_dev, os.fstat(fd_in).st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.ESTALE, "the original was replaced while being moved", name)
        fd_out = dst.open_new(temp, stat.S_IMODE(st.st_mode))
        try:
            while os.sendfile(fd_out, fd_in, None, 1 << 24):
                pass
            _copy_xattrs(fd_in, fd_out)
            os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(fd_out)
        except BaseException:
            os.close(fd_out)
            dst.unlink(temp, missing_ok=True)
            raise
        os.close(fd_out)
    finally:
        os.close(fd_in)
    try:
        return place(dst, temp, dst, wanted)
    finally:
        dst.unlink(temp, missing_ok=True)


def _copy_xattrs(fd_in: int, fd_out: int) -> None:
    """Extended attributes, as ``shutil.copy2`` copies them: where the target allows."""
    try:
        names = os.listxattr(fd_in)
    except OSError:
        return
    for key in names:
        try:
            os.setxattr(fd_out, key, os.getxattr(fd_in, key))
        except OSError:
            continue
