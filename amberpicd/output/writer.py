"""Atomic, durable output files in two phases: stage (temp + fsync), then publish (rename).

No reader ever sees a half-written output and a crash never leaves a partial file under
a final name. Staged temp files are hidden (``.amberpic-…tmp``) in the destination folder,
so publishing is a same-filesystem rename, and the watcher ignores them.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TEMP_PREFIX = ".amberpic-"
TEMP_SUFFIX = ".tmp"
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


@dataclass(frozen=True)
class StagedOutput:
    """An output written durably under ``temp``, to be published as ``final``."""

    temp: Path
    final: Path
    on_conflict: str  # rename | overwrite | skip


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def temp_path(final: Path, tag: str) -> Path:
    return final.parent / f"{TEMP_PREFIX}{tag}{final.suffix}{TEMP_SUFFIX}"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Create ``path`` (which must not exist), write ``data``, fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def stage(data: bytes, final: Path, on_conflict: str, tag: str) -> StagedOutput:
    """Write ``data`` to a hidden temp file beside ``final``; nothing is visible yet."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(final, tag)
    temp.unlink(missing_ok=True)  # left by an interrupted run of this same job
    write_durably(temp, data)
    return StagedOutput(temp, final, on_conflict)


def discard(staged: StagedOutput) -> None:
    staged.temp.unlink(missing_ok=True)


def publish(staged: StagedOutput, before_link: Callable[[Path], None] | None = None) -> Path | None:
    """Give the staged file its final name; returns the name used, or None when
    ``skip`` found the name taken. Safe to call again after a crash mid-publish.
    ``before_link`` hears each name just before it is tried (the journal notes it, so
    recovery knows where an output went)."""
    temp, final = staged.temp, staged.final
    if staged.on_conflict == "overwrite":
        if before_link is not None:
            before_link(final)
        if temp.exists():
            os.replace(temp, final)
            fsync_dir(final.parent)
        return final
    for n in range(10_000):
        candidate = final if n == 0 else final.with_name(f"{final.stem}-{n}{final.suffix}")
        if staged.on_conflict == "skip" and n > 0:
            discard(staged)
            return None
        if before_link is not None:
            before_link(candidate)
        try:
            _link_noreplace(temp, candidate)
        except FileExistsError:
            if _same_file(temp, candidate):  # crash between link and unlink last time
                break
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, "no free name", str(final))
    temp.unlink(missing_ok=True)
    fsync_dir(final.parent)
    return candidate


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _link_noreplace(src: Path, dst: Path) -> None:
    """Make ``dst`` name ``src``'s file, failing with FileExistsError if ``dst`` exists."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    # Filesystems without hard links (FAT, exFAT): an atomic no-clobber rename instead.
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        rc = renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(dst))
    if dst.exists():  # last resort; racy only against other writers of this folder
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    os.rename(src, dst)
