"""Atomic, durable output files in two phases: stage (temp + fsync), then publish (rename).

No reader ever sees a half-written output and a crash never leaves a partial file under
a final name. Staged temp files are hidden (``.amberpic-…tmp``) in the destination folder,
so publishing is a same-filesystem rename, and the watcher ignores them.

Every step runs relative to the destination folder's descriptor, opened from the output
root without following links (``amberpicd.fs.confined``): a folder below the root that
is a symlink is refused by name, and a link at a final name is replaced or skipped,
never written through.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from amberpicd.fs.confined import (
    DirHandle,
    Escape,
    SymlinkRefused,
    open_dir,
    probe_dir,
)
from amberpicd.fs.names import name_choices

TEMP_PREFIX = ".amberpic-"
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class StagedOutput:
    """An output written durably under ``temp``, to be published as ``final``. Both are
    in one folder below ``root`` (the output template's fixed folder; None: the final
    name's own folder), which every step walks down from without following links."""

    temp: Path
    final: Path
    on_conflict: str  # rename | overwrite | skip
    root: Path | None = None
    sha256: str = ""  # of the bytes staged: the journal keeps it, so undo knows an output

    def folder(self, create: bool = False) -> DirHandle:
        root, rel = split_root(self.final, self.root)
        return open_dir(root, rel, create=create)


def split_root(final: Path, root: Path | None) -> tuple[Path, PurePosixPath]:
    """``final``'s folder as (root, path below the root)."""
    if root is None:
        return final.parent, PurePosixPath()
    if not final.parent.is_relative_to(root):
        raise Escape(str(final))
    return root, PurePosixPath(final.parent.relative_to(root))


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


def stage(
    data: bytes, final: Path, on_conflict: str, tag: str, root: Path | None = None
) -> StagedOutput:
    """Write ``data`` to a hidden temp file beside ``final``; nothing is visible yet.
    Missing folders below ``root`` are made (and fsynced into their parents)."""
    digest = hashlib.sha256(data).hexdigest()
    staged = StagedOutput(temp_path(final, tag), final, on_conflict, root, digest)
    with staged.folder(create=True) as folder:
        folder.unlink(staged.temp.name, missing_ok=True)  # left by an interrupted run
        folder.write_new(staged.temp.name, data)
    return staged


def probe(final: Path, root: Path | None) -> None:
    """What :func:`stage` would refuse about ``final``'s folder, with nothing written
    (``--dry-run``)."""
    probe_dir(*split_root(final, root))


def present(staged: StagedOutput, path: Path) -> bool:
    """Is there a regular file at ``path`` (the temp or a final name of ``staged``), seen
    through the confined folder? A link there does not count; a symlinked folder on the
    way raises SymlinkRefused (it is not "absent": that would let the original go)."""
    try:
        with staged.folder() as folder:
            st = folder.lstat(path.name)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return st is not None and stat.S_ISREG(st.st_mode)


def discard(staged: StagedOutput) -> None:
    """Remove the temp file, if it is still where it was staged (fsynced, so a power cut
    brings no temp back)."""
    try:
        with staged.folder() as folder:
            if folder.lstat(staged.temp.name) is not None:
                folder.unlink(staged.temp.name, missing_ok=True)
                folder.fsync()
    except (FileNotFoundError, NotADirectoryError, SymlinkRefused):
        pass  # the folder is gone or was swapped: nothing of ours is reachable there


def publish(staged: StagedOutput, before_link: Callable[[Path], None] | None = None) -> Path | None:
    """Give the staged file its final name; returns the name used, or None when
    ``skip`` found the name taken. The temp is left for the caller to discard once it has
    recorded the outcome. Safe to call again after a crash mid-publish.
    ``before_link`` hears each name just before it is tried (the journal notes it, so
    recovery knows where an output went)."""
    temp, final = staged.temp, staged.final
    with staged.folder() as folder:
        st = folder.lstat(temp.name)
        if st is not None and not stat.S_ISREG(st.st_mode):  # a link or FIFO put in its place
            raise OSError(errno.EINVAL, "the staged temp file was replaced", str(temp))
        if staged.on_conflict == "overwrite":
            if before_link is not None:
                before_link(final)
            if st is not None:
                _overwrite(folder, temp.name, final.name)
                folder.fsync()
            return final
        name = place(folder, temp.name, folder, final, staged.on_conflict, before_link)
        if name is not None:
            folder.fsync()
        # Published or skipped, the temp stays (a second link to the output) until the
        # caller has recorded the outcome, then discards it: a temp gone from a job the
        # journal still calls staged then never means "published under the name noted
        # before the link" (that name may hold another file), so recovery trusts no such
        # name. Where hard links do not work (FAT) the temp was renamed into place and is
        # gone: recovery then runs the job again, which finds its outputs by their bytes.
        return None if name is None else final.with_name(name)


def _overwrite(folder: DirHandle, temp: str, final: str) -> None:
    """Replace ``final`` with the temp's file, keeping the temp (see publish): link it to a
    second temp name and rename that over ``final`` (a link there is replaced itself)."""
    aux = f"{temp.removesuffix(TEMP_SUFFIX)}.link{TEMP_SUFFIX}"
    folder.unlink(aux, missing_ok=True)  # left by an interrupted run
    folder.link_noreplace(temp, folder, aux)  # FAT: the temp itself is renamed
    try:
        folder.replace(aux, folder, final)
    finally:  # final was this file already (rename did nothing), or the rename failed
        folder.unlink(aux, missing_ok=True)  # (e.g. a folder there): no second temp stays


def place(
    src: DirHandle,
    name: str,
    dst: DirHandle,
    final: Path,
    on_conflict: str = "rename",
    before_link: Callable[[Path], None] | None = None,
) -> str | None:
    """Link ``src``/``name`` into ``dst`` as ``final``'s name, or ``stem-N.ext`` when taken
    (``rename``), or nowhere (``skip``: returns None). A name that already is this very
    file (a crash between link and unlink last time) counts as done. Returns the name."""
    for n, candidate in enumerate(name_choices(final.name)):
        if on_conflict == "skip" and n > 0:
            return None
        if before_link is not None:
            before_link(final.with_name(candidate))
        try:
            src.link_noreplace(name, dst, candidate)
        except FileExistsError:
            if src.same_file(name, dst, candidate):
                return candidate
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(final))


def sweep_temps(roots: set[Path], tag: str) -> int:
    """Remove staged temp files of job ``tag`` below ``roots``; returns how many. Folders
    are walked by descriptor without following links, and each temp is unlinked through
    its folder's descriptor, so a folder swapped for a link mid-walk leads nowhere."""
    prefix, removed = f"{TEMP_PREFIX}{tag}-", 0
    for root in roots:
        try:
            top = open_dir(root)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with top:
            for _, _, files, fd in os.fwalk(".", dir_fd=top.fd, follow_symlinks=False):
                for name in files:
                    if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
                        try:
                            os.unlink(name, dir_fd=fd)
                        except FileNotFoundError:
                            continue
                        removed += 1
    return removed
