"""Folders below a configured root, reached without following any symbolic link.

The configured root itself (an inbox, an output template's fixed folder, an archive) may
be reached through links the user made (``~/Pictures -> /data/Pictures``): the kernel
resolves it when it is opened. Below it, each folder is opened with
``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's descriptor, and created with
``mkdirat`` (the parent then fsynced). Every side effect is a ``*at`` call on a
:class:`DirHandle`, so a folder renamed or swapped for a symlink after it was opened
cannot redirect it: nothing below a root can lead outside it. A symlinked folder is an
error that names it (:class:`SymlinkRefused`).

Also where a path is walked from (``within``, ``inbox_of``: the outermost configured
folder holding it) and the top of a folder's mount (``mount_root``, for the trash). The
names a file takes when its own is taken, and putting a file back, are ``fs.names``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1


class SymlinkRefused(OSError):
    """A folder below a root is a symbolic link. ``str()``: ``Thumbs/2024 is a symbolic
    link; refusing to write through it`` (the root's name, then the path below it)."""

    def __init__(self, shown: str, verb: str):
        super().__init__(errno.ELOOP, f"is a symbolic link; refusing to {verb} through it", shown)

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}"


class Escape(OSError):
    """A path below a root that names ``..`` (or is absolute): refused, never resolved."""

    def __init__(self, shown: str):
        super().__init__(errno.EINVAL, "leaves its root folder; refused", shown)

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}"


def shown(root: Path, rel: PurePath) -> str:
    """How a folder below ``root`` is named in messages: the root's name, then the path
    below it (``Thumbs/2024``), short and unambiguous enough for one log line."""
    return str(PurePosixPath(root.name or "/", rel)) if str(rel) != "." else (root.name or "/")


class DirHandle:
    """An open folder below a root. Names passed to its methods are single components;
    nothing is resolved through a path string."""

    def __init__(self, fd: int, path: Path, label: str):
        self.fd, self.path, self.label = fd, path, label

    def __enter__(self) -> DirHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def fsync(self) -> None:
        os.fsync(self.fd)

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry ``name`` itself (a link is not followed); None when there is none."""
        try:
            return os.stat(_one(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_read(self, name: str) -> int:
        # A terminal never becomes ours; a FIFO never blocks; a link is never followed.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        return os.open(_one(name), flags, dir_fd=self.fd)

    def open_new(self, name: str, mode: int = 0o666) -> int:
        """Create ``name``, which must not exist (a link in its place is not followed).
        A failure to create (full disk, name too long) names the whole path."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(_one(name), flags, mode, dir_fd=self.fd)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _at(exc, self.path / name) from None

    def write_new(self, name: str, data: bytes) -> None:
        """Create ``name``, write ``data``, fsync it; on any failure nothing is left."""
        fd = self.open_new(name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.unlink(name, missing_ok=True)
            raise
        os.close(fd)

    def unlink(self, name: str, missing_ok: bool = False) -> None:
        try:
            os.unlink(_one(name), dir_fd=self.fd)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, name: str, dst: DirHandle, dst_name: str) -> None:
        """renameat: ``dst_name`` (a file, or a link itself, never its target) is replaced."""
        os.replace(_one(name), _one(dst_name), src_dir_fd=self.fd, dst_dir_fd=dst.fd)

    def same_file(self, name: str, other: DirHandle, other_name: str) -> bool:
        """Do the two entries name one inode (links themselves, not what they point at)?"""
        a, b = self.lstat(name), other.lstat(other_name)
        return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def link_noreplace(self, name: str, dst: DirHandle, dst_name: str) -> None:
        """Make ``dst_name`` in ``dst`` name the file ``name``; FileExistsError if it
        exists. Where hard links are not supported (FAT, exFAT) the file is renamed
        instead, atomically and without clobbering where the kernel can."""
        src_name, dst_name = _one(name), _one(dst_name)
        try:
            os.link(
                src_name, dst_name, src_dir_fd=self.fd, dst_dir_fd=dst.fd, follow_symlinks=False
            )
            return
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
        self.rename_noreplace(src_name, dst, dst_name)

    def rename_noreplace(self, name: str, dst: DirHandle, dst_name: str) -> None:
        """Move ``name`` to ``dst_name`` in ``dst``; FileExistsError if that exists."""
        src_name, dst_name = _one(name), _one(dst_name)
        if _renameat2_noreplace(self.fd, src_name, dst.fd, dst_name):
            return
        if dst.lstat(dst_name) is not None:  # last resort; racy only against other writers
            raise FileExistsError(errno.EEXIST, "exists", dst_name)
        os.rename(src_name, dst_name, src_dir_fd=self.fd, dst_dir_fd=dst.fd)


def open_dir(
    root: Path,
    rel: PurePath | str = "",
    *,
    create: bool = False,
    verb: str = "write",
    mode: int = 0o777,
) -> DirHandle:
    """The folder ``root/rel``, reached from ``root`` one component at a time without
    following a link; ``create`` makes missing folders (root included), each fsynced
    into its parent. Raises SymlinkRefused naming a symlinked folder below ``root``,
    Escape for ``..``, FileNotFoundError / NotADirectoryError otherwise."""
    rel = PurePosixPath(rel)
    if rel.is_absolute() or ".." in rel.parts:
        raise Escape(shown(root, rel))
    with DirHandle(_open_root(root, create, mode), root, shown(root, PurePosixPath())) as top:
        return open_below(top, rel, create=create, verb=verb, mode=mode)


def open_below(
    top: DirHandle,
    rel: PurePath | str,
    *,
    create: bool = False,
    verb: str = "write",
    mode: int = 0o777,
) -> DirHandle:
    """Like :func:`open_dir`, from an already open folder instead of a root path."""
    rel = PurePosixPath(rel)
    if rel.is_absolute() or ".." in rel.parts:
        raise Escape(shown(top.path, rel))
    fd = os.dup(top.fd)
    done = PurePosixPath()
    try:
        for part in rel.parts:
            done = done / part
            label = shown(top.path, done)
            child = _open_child(fd, part, create, label, verb, mode, top.path / done)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return DirHandle(fd, top.path.joinpath(rel), shown(top.path, rel))


def mount_root(folder: DirHandle) -> DirHandle:
    """The top folder of the mount holding ``folder``, reached by ``..`` from its
    descriptor (never by a path): the last one up on the same device and mount."""
    fd, path = os.dup(folder.fd), folder.path
    try:
        while True:
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            here, there = os.fstat(fd), os.fstat(up)
            if (
                there.st_dev != here.st_dev
                or there.st_ino == here.st_ino
                or _mount_id(up) != _mount_id(fd)
            ):
                os.close(up)
                return DirHandle(fd, path, path.name or "/")
            os.close(fd)
            fd, path = up, path.parent
    except BaseException:
        os.close(fd)
        raise


def _mount_id(fd: int) -> str | None:
    """The mount a descriptor is on (a bind mount of the same disk is another one), from
    /proc; None where /proc does not say."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
            for line in info:
                if line.startswith("mnt_id:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def within(folder: Path, roots: Iterable[Path]) -> tuple[Path, PurePosixPath]:
    """Where ``folder`` is walked from: the outermost configured folder among ``roots``
    that holds it, and the path from there. A configured folder below another one (an
    archive ``P/Originals`` beside outputs in ``P/{rule}``, thumbnails in ``P/thumbs``
    beside ``P``) is thus reached without following links from the outer one, so the
    outer one's writers cannot swap it for a link. Roots are compared as configured."""
    holders = [r for r in roots if folder == r or folder.is_relative_to(r)]
    top = min(holders, key=lambda r: len(r.parts), default=folder)
    return top, PurePosixPath(folder.relative_to(top))


def inbox_of(path: Path, relpath: str) -> tuple[Path, PurePosixPath]:
    """The inbox root of ``path`` and its sub-folder below it. Callers pass ``relpath``
    as the file's folder below its inbox, so the root is that many folders up; a
    ``relpath`` that is not the folder's tail names no folder of ``path`` (only an archive
    sub-folder), and the file's own folder is then the root walked from."""
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


def open_dir_of(path: Path, relpath: str, verb: str, roots: Iterable[Path] = ()) -> DirHandle:
    """The folder holding ``path``, walked down from its inbox root (``inbox_of``), or
    from the outermost configured folder holding that (``within``)."""
    inbox, rel = inbox_of(path, relpath)
    top, below = within(inbox, roots)
    return open_dir(top, below / rel, verb=verb)


def probe_dir(root: Path, rel: PurePath | str = "", verb: str = "write") -> None:
    """Raise what :func:`open_dir` with ``create`` would raise, creating nothing (a dry
    run): the folders that exist are walked; a missing one ends the walk."""
    rel = PurePosixPath(rel)
    if rel.is_absolute() or ".." in rel.parts:
        raise Escape(shown(root, rel))
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    done = PurePosixPath()
    try:
        for part in rel.parts:
            done = done / part
            try:
                child = _open_child(fd, part, False, shown(root, done), verb, 0o777, root / done)
            except FileNotFoundError:
                return
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def _open_root(root: Path, create: bool, mode: int = 0o777) -> int:
    """The configured root, resolved by the kernel (links the user made are followed)."""
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create or root.parent == root:
            raise
    parent = _open_root(root.parent, create)
    try:
        try:
            os.mkdir(root.name, mode, dir_fd=parent)
            os.fsync(parent)  # the new folder's entry is durable before anything goes in
        except FileExistsError:
            pass
    finally:
        os.close(parent)
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _open_child(
    parent: int, name: str, create: bool, label: str, verb: str, mode: int, where: Path
) -> int:
    for attempt in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create or attempt:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), label) from None
            try:
                os.mkdir(name, mode, dir_fd=parent)
                os.fsync(parent)
            except FileExistsError:
                pass  # made meanwhile (by another worker): open it, with the same checks
            except OSError as exc:  # a full disk, no inode left: say which folder
                raise _at(exc, where) from None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                raise SymlinkRefused(label, verb) from None
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), label) from None
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), label)


def _at(exc: OSError, path: Path) -> OSError:
    """``exc`` again, naming the whole ``path`` instead of a name relative to a descriptor."""
    return type(exc)(exc.errno, exc.strerror, str(path))


def _one(name: str) -> str:
    """``name`` as a single path component; anything else is a bug or an attack."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Escape(name)
    return name


def _renameat2_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> bool:
    """renameat2(RENAME_NOREPLACE); False where the kernel or filesystem lacks it."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    rc = renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), dst)
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), dst)
