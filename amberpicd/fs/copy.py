"""A durable copy of an open file into a new file of a confined folder: what a move across
filesystems does before the source goes (the archive move in ``engine/originals.py``, the
undo's way back in ``engine/restore.py``)."""

from __future__ import annotations

import os
import stat
from typing import Protocol

from amberpicd.fs.confined import DirHandle


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
