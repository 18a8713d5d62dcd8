"""What a test needs from the machine, and what happens when it is not there.

On a developer's machine a missing capability (root, a mount, a download) skips the test
with the reason. In CI (``CI`` set, as .ci/run's callers do) it fails the test instead: a
skip there would silently test less than the suite promises.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip for ``reason``; in CI, fail for it."""
    if in_ci():
        pytest.fail(f"required in CI, missing: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small filesystem of our own at ``path`` (root only: CI and this machine run as root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        missing("mounting a small tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        missing(f"cannot mount tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_inodes(folder: Path) -> Path:
    """Use up every inode of ``folder``'s filesystem with empty files in one sub-folder."""
    many = folder / "inodes"
    many.mkdir()
    with contextlib.suppress(OSError):
        for n in range(1_000_000):
            (many / str(n)).touch()
    return many


def fill(folder: Path) -> Path:
    """Fill ``folder``'s filesystem to the last byte with one file; returns that file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while f.write(b"\0" * size):
                    pass
    return filler
