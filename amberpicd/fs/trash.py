"""Move a file into the freedesktop home trash through directory descriptors.

The file is renamed from its folder's descriptor (walked from the inbox root without
following links) into ``$XDG_DATA_HOME/Trash/files``, after its ``.trashinfo`` was
created exclusively in ``Trash/info``, as the trash specification orders. A file on
another filesystem than the home trash is handed to send2trash (by path), which knows the
per-volume trash folders.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from amberpicd.fs.confined import DirHandle, open_dir

_INFO_SUFFIX = ".trashinfo"


def trash(folder: DirHandle, name: str, path: Path) -> None:
    """Trash ``name`` in ``folder`` (shown to users as ``path``)."""
    # The freedesktop implementation itself: the package's default would load GIO into the
    # daemon when PyGObject is importable (it is, for the tray).
    from send2trash import plat_other

    home = Path(plat_other.HOMETRASH)
    home_dev = os.stat(os.path.realpath(os.path.expanduser("~"))).st_dev
    if os.fstat(folder.fd).st_dev != home_dev:
        plat_other.send2trash(str(path))
        return
    with (
        open_dir(home, "files", create=True, verb="move", mode=0o700) as files,
        open_dir(home, "info", create=True, verb="move", mode=0o700) as info,
    ):
        text = plat_other.info_for(os.fsencode(path), plat_other.XDG_DATA_HOME)
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
                if isinstance(exc, OSError) and exc.errno == errno.EXDEV:
                    plat_other.send2trash(str(path))  # $XDG_DATA_HOME on another disk
                    return
                raise
            info.fsync()
            files.fsync()
            folder.fsync()
            return
    raise FileExistsError(errno.EEXIST, "no free name in the trash", name)
