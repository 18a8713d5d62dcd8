"""What happens to an original once every output is durably written: keep, move, trash,
delete. The original is left in place if it changed since it was read."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from amberpicd.errors import OriginalError
from amberpicd.output.writer import StagedOutput, fsync_dir, publish, temp_path


def unchanged(path: Path, size: int, mtime_ns: int) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


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
    if not path.exists() and policy in ("trash", "delete"):
        return None  # already done by an earlier, interrupted run
    if not unchanged(path, size, mtime_ns):
        raise OriginalError(path, "it changed while being processed; left in place")
    try:
        if policy == "move":
            if archive is None:
                raise OriginalError(path, "originals: move needs an archive folder")
            return _move(path, archive / relpath)
        if policy == "trash":
            # The freedesktop implementation itself: the package's default would load GIO
            # into the daemon when PyGObject is importable (it is, for the tray).
            from send2trash import plat_other

            plat_other.send2trash(str(path))
            return None
        if policy == "delete":
            path.unlink()
            fsync_dir(path.parent)
            return None
    except OriginalError:
        raise
    except Exception as exc:
        raise OriginalError(path, f"{policy}: {exc}") from None
    raise OriginalError(path, f"unknown originals policy {policy!r}")


def _move(path: Path, folder: Path) -> Path:
    """Move without ever clobbering a file in the archive; across filesystems the copy
    is made durable before the source is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        staged = StagedOutput(path, folder / path.name, "rename")
        final = publish(staged)  # same filesystem: a no-clobber hard link, then unlink
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temp = temp_path(folder / path.name, "original")
        temp.unlink(missing_ok=True)
        try:
            shutil.copy2(path, temp)
            fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            final = publish(StagedOutput(temp, folder / path.name, "rename"))
        except BaseException:  # e.g. the archive filled up halfway: no partial copy stays
            temp.unlink(missing_ok=True)
            raise
        path.unlink()
    fsync_dir(path.parent)
    assert final is not None
    return final
