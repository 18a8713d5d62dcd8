"""Which file is this? A stat-based identity that a copy, ``touch`` or ``cp -p`` cannot forge.

``FileIdentity`` is (device, inode, size, mtime_ns, ctime_ns). mtime alone is set at will
(``touch -d``, ``cp -p``, ``exiftool -P``, ``os.utime``); ctime is not: the kernel sets it to
"now" on every change of content or metadata, including the utime call itself, and a new
file that reuses a freed inode number gets a new ctime. So an identity that still matches
means the same inode with no change since it was taken.

When the identity moved but the bytes need not have (a hard link added or removed, ``chmod``,
``touch``, the same bytes written anew), :meth:`FileIdentity.same_content` compares by content
instead, reading the file once more: the only read outside a worker, and only then.

Where the filesystem keeps no change time (FAT, exFAT, FUSE: :func:`change_time_kept`),
ctime is a time anyone can set, and the original step compares bytes, never the identity.

One limit, stated: ctime has the filesystem's timestamp granularity (a clock tick on ext4 and
tmpfs, a second on ext3, two on FAT). A change within the same tick as the previous one can
leave the identity unchanged; :meth:`FileIdentity.settled` tells whether an identity taken at
a given moment is old enough to be trusted for that (the "racy" window git's index also has).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

#: An identity whose ctime is at least this much older than the moment it was taken cannot
#: share its ctime with a later change, whatever the filesystem's timestamp granularity.
RACY_NS = 2_000_000_000

# statfs types whose "ctime" is no kernel change time: FAT keeps a creation time, exFAT
# reports its modification time (so ``touch -r`` sets it), a FUSE driver reports what it
# likes. There an identity that matches proves nothing; only the bytes do.
_NO_CHANGE_TIME = frozenset({0x4D44, 0x2011BAB0, 0x65735546})


def change_time_kept(fd: int) -> bool:
    """Whether the filesystem holding ``fd`` keeps a real change time (its statfs type is
    none of FAT, exFAT, FUSE). False when that cannot be told: the bytes are compared."""
    buf = ctypes.create_string_buffer(256)  # struct statfs, f_type first (a long)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fstatfs(fd, buf) != 0:
        return False
    f_type = int.from_bytes(buf.raw[: ctypes.sizeof(ctypes.c_long)], "little") & 0xFFFFFFFF
    return f_type not in _NO_CHANGE_TIME


@dataclass(frozen=True)
class FileIdentity:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    # sha256 of the file's bytes when the identity was taken, when known; not part of the
    # identity (equality), only what same_content() compares against.
    content_hash: str = field(default="", compare=False)

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity in a stat (or fstat, lstat) result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def matches(self, st: os.stat_result) -> bool:
        """Whether ``st`` is this very file, unchanged since the identity was taken."""
        return self == FileIdentity.of(st)

    def settled(self, taken_ns: int) -> bool:
        """Whether, taken at ``taken_ns`` (``time.time_ns()``), this identity is safe to cache:
        a later change cannot have left ctime as it is."""
        return taken_ns - self.ctime_ns >= RACY_NS

    def same_content(self, st: os.stat_result, open_fd: Callable[[], int]) -> bool:
        """Whether the file whose lstat is ``st`` holds the same bytes, though its identity
        moved (a hard link added or removed, ``chmod``, or the same bytes written anew).
        ``open_fd`` opens it for reading (without following links; through its folder's
        descriptor). False without reading when it is not a regular file of the same size."""
        if not self.content_hash or st.st_size != self.size or not stat.S_ISREG(st.st_mode):
            return False
        try:
            fd = open_fd()
        except OSError:
            return False
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode) or before.st_size != self.size:
                return False
            digest = hashlib.sha256()
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
            unchanged = FileIdentity.of(before).matches(os.fstat(fd))
        finally:
            os.close(fd)
        return unchanged and digest.hexdigest() == self.content_hash
