"""An output folder on a real filesystem without hard links (exFAT, through the FUSE driver on
a loop device): publish renames each temp into place, so a kill -9 before the journal records
the publish leaves a staged job without its temp. The restart runs it again and must find its
own output by its bytes (and its age): one output, no temp, the original handled once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import images
import need
import pytest
from daemonproc import DaemonProc, files, wait_for
from test_identity_daemon import jobs

CONFIG = """
daemon:
  settle_seconds: {settle}
  workers: 1
watch:
  - inbox: {root}/inbox
    originals: ORIGINALS
    archive: {root}/archive
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {root}/out/{{stem}}.{{ext}}
"""


class Exfat:
    def __init__(self, path: Path, device: str):
        self.path, self.device = path, device

    def mount(self) -> None:
        mounted = subprocess.run(
            ["mount.exfat-fuse", self.device, str(self.path)], capture_output=True
        )
        if mounted.returncode != 0:
            need.missing(f"cannot mount exFAT here: {mounted.stderr.decode().strip()}")

    def umount(self) -> None:
        subprocess.run(["umount", str(self.path)], check=False, capture_output=True)


@contextlib.contextmanager
def exfat(path: Path, image: Path) -> Iterator[Exfat]:
    """A 32 MiB exFAT filesystem mounted at ``path`` (root, a loop device, FUSE)."""
    if os.geteuid() != 0:
        need.missing("mounting exFAT needs root")
    for tool in ("mkfs.exfat", "mount.exfat-fuse", "losetup"):
        if shutil.which(tool) is None:
            need.missing(f"{tool} is not installed (.ci/run installs exfatprogs, exfat-fuse)")
    path.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if loop.returncode != 0:
        need.missing(f"no loop device: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    fs = Exfat(path, device)
    try:
        fs.mount()
        try:
            yield fs
        finally:
            fs.umount()
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


@pytest.fixture
def daemon(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, **kw) -> DaemonProc:
        d = DaemonProc(tmp_path, text, **kw)
        d.inbox.mkdir(exist_ok=True)
        procs.append(d)
        return d

    yield make
    for d in procs:
        d.close()


def states(d: DaemonProc) -> list[str]:
    return [h["state"] for h in d.history()]


@pytest.mark.parametrize("remount", [False, True], ids=["running", "remounted"])
@pytest.mark.parametrize("originals", ["keep", "delete"])
def test_kill_9_after_the_rename_into_place_on_exfat_is_exactly_once(
    daemon, tmp_path, originals, remount
):
    with exfat(tmp_path / "out", tmp_path / "exfat.img") as fs:
        out = fs.path
        probe = out / "probe"
        probe.write_bytes(b"x")
        with pytest.raises(OSError):  # control: this folder really has no hard links
            os.link(probe, out / "probe2")
        probe.unlink()
        d = daemon(
            CONFIG.replace("ORIGINALS", originals),
            extra_env={"AMBERPIC_TEST_CRASH_AT": "published:0"},
        )
        d.start()
        # exFAT keeps whole seconds: drop just after a second begins, so the output is
        # written within the same second and its time, rounded down, reads older than the
        # file's (the unlucky case, made likely: the deterministic one is below).
        time.sleep(1 - time.time() % 1 + 0.02)
        src = images.jpeg(d.inbox / "IMG_1.jpg", (64, 48))
        original = src.read_bytes()
        d.proc.wait(30)
        assert d.proc.returncode == -9, f"the hook did not fire:\n{d.logs()}"
        d.kill()
        d.env.pop("AMBERPIC_TEST_CRASH_AT")
        assert sorted(p.name for p in files(out)) == ["IMG_1.png"]  # renamed: no temp
        if remount:  # a power cut: what the disk holds, not the driver's memory
            fs.umount()
            fs.mount()
        d.start()
        wait_for(lambda: "done" in states(d), 30, "the rerun to be done")
        wait_for(d.idle)
        assert "interrupted while staged" in d.logs()  # recovered, not a lucky clean run
        assert sorted(p.name for p in files(out)) == ["IMG_1.png"], "a -1 copy or a temp"
        if originals == "keep":
            assert src.read_bytes() == original
        else:
            assert not src.exists()


def test_kill_9_after_the_rename_into_place_then_a_chmod_is_exactly_once(daemon, tmp_path):
    """A kill -9 on exFAT after the rename into place, then the file's ctime moves (a chmod,
    a tag a file manager writes as an xattr): the output is not younger than the file any
    more, but the journal knows the name noted before the rename and the sha256 of the bytes
    staged, so recovery finds the output there, and publishes no -1 copy."""
    with exfat(tmp_path / "out", tmp_path / "exfat.img") as fs:
        out = fs.path
        d = daemon(
            CONFIG.replace("ORIGINALS", "delete"),
            extra_env={"AMBERPIC_TEST_CRASH_AT": "published:0"},
        )
        d.start()
        src = images.jpeg(d.inbox / "IMG_1.jpg", (64, 48))
        d.proc.wait(30)
        assert d.proc.returncode == -9, f"the hook did not fire:\n{d.logs()}"
        d.kill()
        d.env.pop("AMBERPIC_TEST_CRASH_AT")
        assert sorted(p.name for p in files(out)) == ["IMG_1.png"]  # renamed: no temp
        written = (out / "IMG_1.png").stat().st_ctime_ns
        wait_for(lambda: time.time_ns() > written + 2_100_000_000, 5, "two seconds")
        os.chmod(src, 0o600)
        assert src.stat().st_ctime_ns > written + 2_000_000_000  # control: the ctime moved
        d.start()
        wait_for(lambda: "done" in states(d), 30, "the rerun to be done")
        wait_for(d.idle)
        assert "interrupted while staged" in d.logs()
        assert sorted(p.name for p in files(out)) == ["IMG_1.png"], "a -1 copy of its output"
        assert not src.exists()


def test_a_rerun_on_exfat_finds_its_output_written_in_the_files_own_second(tmp_path):
    """exFAT keeps whole seconds (FAT two): an output written in the same second as its
    source appeared reads, once the driver's memory is gone, as older than the file. It is
    still this file's own: the rerun after a kill -9 (temp renamed into place, publish not
    recorded) must find it, never make ``a-1.png``. Deterministic: the file appears just
    after a second begins and the output follows within milliseconds."""
    from confineattack import make_config

    from amberpicd.daemon.recovery import recover
    from amberpicd.engine.commit import OriginalsPolicy, commit
    from amberpicd.engine.job import FileResult, PlannedOutput
    from amberpicd.engine.recording import JournalRecorder
    from amberpicd.fs.identity import FileIdentity
    from amberpicd.journal import Journal
    from amberpicd.journal import StagedOutput as JournalStaged
    from amberpicd.output.writer import publish, stage

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with exfat(tmp_path / "out", tmp_path / "exfat.img") as fs:
        out = fs.path
        config = make_config(tmp_path, inbox, originals="delete")
        with Journal(tmp_path / "journal.db") as journal:
            time.sleep(1 - time.time() % 1 + 0.05)
            src = inbox / "a.jpg"
            src.write_bytes(b"the only copy of this photo")
            identity = FileIdentity.of(src.stat())
            job = journal.begin_file(src, "fp", inbox=inbox, identity=identity, originals="delete")
            journal.identify(job, "0" * 64, identity)
            staged = stage(b"pixels", out / "a.png", "rename", f"{job}-0")
            journal.stage(job, [JournalStaged(staged.temp, staged.final, "rename")])
            assert publish(staged, lambda p: journal.mark_published(job, 0, p)) == staged.final
            assert not staged.temp.exists()  # renamed into place; then the kill -9
            fs.umount()  # and the power cut: what the disk holds, whole seconds
            fs.mount()
            written = (out / "a.png").stat().st_ctime_ns
            assert written < src.stat().st_ctime_ns, "control: the output reads as older"
            rerun: list[int] = []
            recover(journal, config, rerun=lambda j: rerun.append(j.id))
            assert rerun == [job]
            again = stage(b"pixels", out / "a.png", "rename", f"{job}-0")  # the rerun
            planned = PlannedOutput("web", again.final, 6, 1, 1, again)
            result = FileResult(
                src, "staged", ["web"], [planned], identity=FileIdentity.of(src.stat())
            )
            report = commit(
                result, OriginalsPolicy("delete"), recorder=JournalRecorder(journal, job, src)
            )
        assert report.status == "done" and report.outputs == [out / "a.png"]
        assert sorted(p.name for p in out.iterdir()) == ["a.png"], "a -1 copy of its own output"
        assert not src.exists()


@pytest.mark.parametrize("rewrite", [True, False], ids=["rewritten", "control"])
def test_an_exfat_inbox_file_rewritten_in_place_with_its_mtime_put_back_is_kept(tmp_path, rewrite):
    """On exFAT (and FAT) a file's ctime is its mtime, so inode, size, mtime and ctime are
    no unforgeable identity there: a file rewritten in place with its mtime put back
    (``touch -r``, ``exiftool -P``) looked unchanged, and the original step deleted the
    new, unprocessed content. There the bytes are compared. Control: an untouched file is
    deleted after processing as usual."""
    from test_commitflow import WEBP_SLOW, config, noise

    with exfat(tmp_path / "inbox", tmp_path / "exfat.img") as fs:
        d = DaemonProc(tmp_path, config("delete", slow=WEBP_SLOW))
        try:
            d.start()
            src = noise(fs.path / "n.png", 900)
            wait_for(lambda: (d.out / ".amberpic-1-0.png.tmp").exists(), 60, "read, staging")
            st = os.stat(src)
            if rewrite:
                other = noise(tmp_path / "other.png", 900, seed=2).read_bytes()
                with open(src, "r+b") as f:  # the same size: another picture's bytes, padded
                    f.write(other[: st.st_size].ljust(st.st_size, b"\0"))
                os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))  # as touch -r, exiftool -P
                assert os.stat(src).st_ino == st.st_ino  # control: the identity looks the same
                assert os.stat(src).st_ctime_ns == st.st_ctime_ns
            new = hashlib.sha256(src.read_bytes()).hexdigest()
            wait_for(lambda: d.idle() and "running" not in states(d), 90, "the jobs to end")
            wait_for(lambda: d.idle() and "running" not in states(d), 90, "and stay ended")
            if src.exists():
                assert rewrite, "control: an untouched original is deleted once processed"
            else:  # gone: only once its own content was processed
                done = [h for _, h, state in jobs(d) if state == "done"]
                assert new in done, "new, unprocessed content deleted as the processed original"
        finally:
            d.close()
