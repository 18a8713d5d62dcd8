"""Filesystem primitives that keep every write, move and delete inside a configured folder.

``confined`` opens folders below a configured root one component at a time, relative to
directory file descriptors and never following a symbolic link, and does every side
effect (create, write, link, rename, unlink, fsync) relative to those descriptors.
"""
