"""The names a file takes when the one it wants is taken: ``stem-1.ext``, ``stem-2.ext``...

Publishing an output under ``on_conflict: rename``, a dry run's naming and putting a file
back (undo, an original set aside, a trash restore) all take names in this one order.
Nothing here opens a folder by path: ``give_back`` moves a file between two folders already
opened by ``fs.confined``, without ever replacing a file that is there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from amberpicd.fs.confined import DirHandle

NAME_TRIES = 10_000  # name, name-1 ... name-9999: then the folder is full for that name


def name_choices(name: str) -> Iterator[str]:
    """``name``, then ``stem-1.ext``, ``stem-2.ext``...: the names a file takes, in order,
    when the one it wants is taken (publishing, a dry run's naming, putting a file back)."""
    stem, ext = os.path.splitext(name)
    yield name
    for n in range(1, NAME_TRIES):
        yield f"{stem}-{n}{ext}"


def give_back(folder: DirHandle, name: str, dst: DirHandle, wanted: str) -> None:
    """Move ``name`` (in ``folder``) to ``wanted`` in ``dst``, or to the first free
    ``stem-N.ext`` beside it when a newer file took that name: a file put back never
    clobbers one. Nothing happens when ``name`` is gone already (an earlier run put it
    back)."""
    for choice in name_choices(wanted):
        try:
            folder.rename_noreplace(name, dst, choice)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return
        dst.fsync()
        return
    raise FileExistsError(errno.EEXIST, "no free name to put the file back under", wanted)
