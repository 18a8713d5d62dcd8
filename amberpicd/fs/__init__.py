"""Filesystem primitives: keeping every write, move and delete inside a configured folder,
and telling a file from its replacement.

``confined`` opens folders below a configured root one component at a time, relative to
directory file descriptors and never following a symbolic link, and does every side
effect (create, write, link, rename, unlink, fsync) relative to those descriptors.
``names`` gives the names a file takes when its own is taken (``stem-1.ext``...) and puts
a file back without clobbering one. ``identity`` is what makes a file the same file:
device, inode, size, mtime and ctime. ``trash`` is the freedesktop.org trash. ``copy``
is the durable copy a move across filesystems makes before the source goes.
"""
