"""Which files in an inbox count: the name rules and the folder scan.

:func:`is_ignored_name` refuses hidden, partial and temporary names; :func:`scan` lists the
regular files an inbox holds now, by the same rules the watcher reports events with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath

log = logging.getLogger(__name__)

#: Names being downloaded or written by someone else (compared case-insensitively).
IGNORED_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".opdownload", ".filepart")
IGNORED_SUFFIXES += (".crswap", ".!ut", ".!qb", ".tmp", ".~tmp", ".temp", ".swp")


def never(path: Path) -> bool:
    """The default ``ignore``: keeps every path."""
    return False


def is_ignored_name(rel: PurePath) -> bool:
    """True for a path (relative to its inbox) that is hidden, partial or temporary."""
    if any(part.startswith(".") for part in rel.parts):
        return True
    return _partial_name(rel.name)


def _partial_name(name: str) -> bool:
    name = name.lower()
    return name.endswith("~") or name.endswith(IGNORED_SUFFIXES)


def ignored(ignore: Callable[[Path], bool], path: Path) -> bool:
    """``ignore(path)``, taken as True if it raises."""
    try:
        return bool(ignore(path))
    except Exception:
        # Safer to skip a file than to risk re-ingesting our own output forever.
        log.exception("ignore(%s) failed; skipping the file", path)
        return True


def scan(
    inbox: Path, recursive: bool = False, ignore: Callable[[Path], bool] = never
) -> Iterator[Path]:
    """The regular files now in ``inbox`` that the watcher would report, in name order.

    Symlinks are never followed (a link pointing inside the inbox names a file found anyway; one
    pointing outside must not be read), FIFOs, sockets and devices are skipped by their
    directory entry type, and nothing is opened. ``ignore`` is also asked about folders
    (recursive scans), so it can prune the daemon's output folders. Unreadable folders are
    logged and skipped; a missing inbox yields nothing.
    """
    inbox = Path(inbox)
    stack = [inbox]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            log.debug("%s: gone while scanning", folder)
            continue
        except OSError as exc:
            log.warning("%s: cannot list folder: %s", folder, exc.strerror or exc)
            continue
        subfolders = []
        for entry in entries:
            path = folder / entry.name
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not ignored(ignore, path):
                        subfolders.append(path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue  # symlink, FIFO, socket, device
            except OSError:
                continue
            # is_ignored_name(path relative to inbox), without pathlib's costly relative_to:
            # hidden names were skipped above, folders included, so only the suffix is left.
            if not _partial_name(entry.name) and not ignored(ignore, path):
                yield path
        stack.extend(reversed(subfolders))
