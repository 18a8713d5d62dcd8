"""A move across filesystems, in two confined steps: ``copy_new``, a durable copy of an open
file into a new file of a folder, then ``unlink_if_same``, the source removed only if its
name still is the file copied (the archive move in ``engine/originals.py``, the undo's way
back in ``engine/restore.py``). Touches only the folders handed in."""

from __future__ import annotations

import os
import stat
from typing import Protocol

from amberpicd.fs.confined import DirHandle
from amberpicd.fs.names import give_back


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def copy_new(
    fd_in: int, st: os.stat_result, dst: DirHandle, name: str, *, digest: Digest | None = None
) -> os.stat_result:
    """Copy the open file ``fd_in`` (``st`` its stat) into a new file ``name`` in ``dst``,
    with its permission bits (never set-user-ID), extended attributes and times, fsynced;
    on any failure nothing is left. With ``digest``, the bytes are read and written here
    and fed to it; without, the kernel copies them (sendfile). Returns the copy's stat."""
    fd_out = dst.open_new(name, stat.S_IMODE(st.st_mode) & 0o777)
    try:
        if digest is None:
            while os.sendfile(fd_out, fd_in, None, 1 << 24):
                pass
        else:
            while chunk := os.read(fd_in, 1 << 20):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
        copy_xattrs(fd_in, fd_out)
        os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.fsync(fd_out)
        return os.fstat(fd_out)
    except BaseException:
        dst.unlink(name, missing_ok=True)
        raise
    finally:
        os.close(fd_out)


def unlink_if_same(folder: DirHandle, name: str, st: os.stat_result, aside: str) -> bool:
    """Remove ``name`` in ``folder`` only if it still is the inode ``st`` (the file checked
    or copied). No syscall unlinks "this inode only": the entry is first renamed to the
    hidden name ``aside`` (atomic: whatever holds the name now is what moves), checked
    there, and removed; another file renamed over the name since the check is put back
    (``give_back``: under a free ``stem-N.ext`` if the name was taken again), never removed.
    True when it was removed; False when the name was gone or held another file."""
    try:
        folder.rename_noreplace(name, folder, aside)
    except FileNotFoundError:
        return False
    now = folder.lstat(aside)
    if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
        folder.unlink(aside, missing_ok=True)
        folder.fsync()
        return True
    give_back(folder, aside, folder, name)
    return False


def copy_xattrs(fd_in: int, fd_out: int) -> None:
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
