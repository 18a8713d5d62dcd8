"""Helpers of the confinement attack tests: a config, a staged job, a tmpfs of our own,
and the attacker's swap of a folder for a link."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from amberpicd.config.loader import parse_config
from amberpicd.engine import batch, pipeline


def make_config(
    tmp_path: Path, inbox: Path, *, originals: str = "keep", output: str = "", on_conflict="rename"
):
    text = f"""
watch:
  - inbox: {inbox}
    recursive: true
    originals: {originals}
    archive: {tmp_path}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: "{output or f"{tmp_path}/out/{{stem}}.{{ext}}"}"
    on_conflict: {on_conflict}
"""
    return parse_config(text, None, tmp_path)


def stage(config, path: Path):
    job, originals = batch.plan(config, path)
    return pipeline.run(job), originals, job.relpath


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m"):
    """A second filesystem of our own (root only: CI and this machine run as root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def swap_for_link(folder: Path, away: Path, target: Path) -> None:
    """The attacker's move: the real folder goes aside, a link to ``target`` takes its name."""
    folder.rename(away)
    folder.symlink_to(target)
