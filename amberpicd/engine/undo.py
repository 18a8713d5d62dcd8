"""Undo: take back what a job did, from what the journal remembers of it.

    intent    the job goes done → undoing in the journal before anything is touched
    original  put back at its inbox path, byte for byte: from the archive (a rename, or
              across filesystems a copy that is fsynced and linked in before the archive's
              file goes), or from the freedesktop trash (its ``.trashinfo`` removed too)
    outputs   each removed only while it holds exactly the bytes written (its sha256 in
              the journal); one that changed is kept and named
    end       undoing → undone: a decision, so the daemon does not take the file again
              unless it changes or ``retry PATH`` is run on it

The original goes back first: a refusal (its inbox name is taken by another file, it is
gone from the archive) then leaves everything as it was, and the job done. The name is
never given to a free variant: the file would then be a new drop the daemon takes. Every
step is idempotent, so an undo cut short (a crash, ``kill -9``) is finished by the next
``undo`` of the file or by the daemon's next start (``resume``), the same steps again.
``delete`` cannot be undone and is refused. A dry run runs the same code with every side
effect (journal writes included) skipped.

May touch: the job's outputs, its original in the archive or a trash, the inbox folder the
original goes back to, and the journal (through its API). Every file is reached through a
folder descriptor walked from a configured root without following links (fs.confined).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from amberpicd.config.schema import Config
from amberpicd.engine.commit import crash_point
from amberpicd.engine.originals import _copy_xattrs, _unlink_if_same
from amberpicd.errors import printable
from amberpicd.fs.confined import DirHandle, Escape, SymlinkRefused, name_choices, open_dir, within
from amberpicd.fs.trash import HOME, trash_folders
from amberpicd.journal import Job, Journal
from amberpicd.output.writer import TEMP_PREFIX, TEMP_SUFFIX

_FATE_OF_POLICY = {"keep": "kept", "move": "moved", "trash": "trashed", "delete": "deleted"}
_SEARCH = 100  # names tried (IMG_1.jpg, IMG_1-1.jpg ...) for an original whose place is unknown


@dataclass
class UndoReport:
    """What undo did (or, in a dry run, would do) for one job."""

    source: Path
    status: str  # undone | nothing | refused | failed
    job_id: int | None = None
    removed: list[Path] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (output, why it stays)
    restored: str | None = None  # "from the archive" / "from the trash" / "already there"
    error: str | None = None
    dry_run: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "status": self.status,
            "job": self.job_id,
            "removed": [str(p) for p in self.removed],
            "kept": [{"path": str(p), "reason": why} for p, why in self.kept],
            "original": self.restored,
            "error": self.error,
            "dry_run": self.dry_run,
        }

    def lines(self) -> list[str]:
        name = printable(self.source.name)
        if self.status != "undone":
            return [self.error or f"{name}: {self.status}"]
        verb = "would undo" if self.dry_run else "undone"
        removed = ", ".join(printable(p.name) for p in self.removed) or "no output"
        how = f"; original {self.restored}" if self.restored else ""
        out = [f"{name}: {verb}: removed {removed}{how}"]
        out += [f"{name}: kept {printable(str(p))}: {why}" for p, why in self.kept]
        return out


class _Refused(Exception):
    """Undo cannot be done; nothing was changed. ``str()`` is the user's line."""


def undo_job(journal: Journal, config: Config, job: Job, *, dry_run: bool = False) -> UndoReport:
    """Undo ``job`` (done, original_failed, or undoing: an undo to finish)."""
    name = printable(job.source.name)
    report = UndoReport(job.source, "undone", job.id, dry_run=dry_run)
    if job.state == "undone":
        return _said(report, "nothing", f"{name}: nothing to undo (undone already)")
    if job.state not in ("done", "original_failed", "undoing"):
        return _said(report, "nothing", f"{name}: nothing to undo (its job is {job.state})")
    fate = _fate(job)
    if fate["fate"] == "deleted":
        return _said(
            report, "refused", f"{name}: cannot undo: the original was deleted (originals: delete)"
        )
    roots = set(config.folders())
    resuming = job.state == "undoing"
    if not dry_run and not resuming:
        journal.begin_undo(job.id, {"started": time.time()})
        crash_point("undo:begun")
    try:
        report.restored = _restore(job, fate, config, roots, dry_run=dry_run, resuming=resuming)
    except (_Refused, SymlinkRefused, Escape) as exc:
        text = str(exc) if isinstance(exc, _Refused) else f"{name}: cannot undo: {exc}"
        if not dry_run:
            journal.abandon_undo(job.id, {"refused": text, "at": time.time()})
        return _said(report, "refused", text)
    except OSError as exc:
        return _unfinished(report, name, exc, dry_run)
    crash_point("undo:restored")
    try:
        for n, (path, want) in enumerate(zip(job.outputs, _hashes(job), strict=True)):
            if journal.other_writer(path, job.id) is not None:
                report.kept.append((path, "also the output of a later job; left in place"))
                continue
            why = _remove_output(path, want, roots, dry_run=dry_run)
            if why is None:
                report.removed.append(path)
            elif why != "gone":
                report.kept.append((path, why))
            crash_point(f"undo:removed:{n}")
    except OSError as exc:
        return _unfinished(report, name, exc, dry_run)
    if not dry_run:
        record = {
            "finished": time.time(),
            "original": report.restored,
            "removed": [os.fspath(p) for p in report.removed],
            "kept": [os.fspath(p) for p, _ in report.kept],
        }
        journal.end_undo(job.id, record)
    return report


def resume(journal: Journal, config: Config) -> list[UndoReport]:
    """Finish every undo an interruption left in state undoing (the daemon's start)."""
    return [undo_job(journal, config, job) for job in journal.undoing()]


def find(journal: Journal, path: Path) -> Job | None:
    """The newest job of ``path`` (the original's inbox path, or one of its outputs)."""
    for candidate in dict.fromkeys((path.absolute(), path.resolve())):
        job = journal.latest_of(candidate)
        if job is not None:
            return job
    return None


def _said(report: UndoReport, status: str, text: str) -> UndoReport:
    report.status, report.error = status, text
    return report


def _unfinished(report: UndoReport, name: str, exc: OSError, dry_run: bool) -> UndoReport:
    again = "" if dry_run else "; `amberpicd undo` again finishes it"
    reason = exc.strerror or str(exc)
    if exc.filename:
        reason = f"{printable(os.fsdecode(exc.filename))}: {reason}"
    return _said(report, "failed", f"{name}: undo not finished: {reason}{again}")


def _fate(job: Job) -> dict:
    """Where the original went: as recorded, or (a job from before undo, or a crash before
    the record) only the policy, the place then being searched for."""
    if job.original:
        return job.original
    return {"fate": _FATE_OF_POLICY.get(job.originals, "kept")}


def _hashes(job: Job) -> tuple[str, ...]:
    return job.output_hashes or ("",) * len(job.outputs)


def _digest(folder: DirHandle, name: str) -> str | None:
    """The sha256 of the regular file ``name`` in ``folder`` (None: not one, e.g. a link)."""
    try:
        fd = folder.open_read(name)
    except OSError:  # gone, a symbolic link (O_NOFOLLOW), unreadable: not the file wanted
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def _hidden(kind: str, name: str) -> str:
    """A hidden name (the watcher and scans skip it) for ``name`` mid-step; the same one
    every time, so a crash's leftover is found by the next run."""
    return f"{TEMP_PREFIX}{kind}-{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}{TEMP_SUFFIX}"


# --- the original --------------------------------------------------------------------------


def _inbox_folder(job: Job, roots: set[Path], create: bool) -> DirHandle:
    inbox = job.inbox or job.source.parent
    rel = job.source.parent.relative_to(inbox)
    top, below = within(inbox, roots | {inbox})
    return open_dir(top, below / rel, create=create, verb="restore")


def _restore(
    job: Job, fate: dict, config: Config, roots: set[Path], *, dry_run: bool, resuming: bool
) -> str | None:
    """Put the original back at its inbox path; returns how it came back."""
    name, shown = job.source.name, printable(job.source.name)
    with _inbox_folder(job, roots, create=not dry_run and fate["fate"] != "kept") as inbox:
        if inbox.lstat(name) is not None:
            if _digest(inbox, name) != job.content_hash:
                raise _Refused(
                    f"{shown}: cannot undo: {shown} in the inbox is another file now;"
                    " move it away and undo again"
                )
            if resuming:  # the move back was done; what an interruption left is tidied
                _tidy(job, fate, config, roots, inbox)
            return None if fate["fate"] == "kept" else "already there"
        if fate["fate"] == "kept":
            raise _Refused(f"{shown}: cannot undo: the original is no longer in the inbox")
        if fate["fate"] == "moved":
            src, src_name = _archived(job, fate, config, roots)
            info = None
            how = "put back from the archive"
        else:
            src, src_name, info = _trashed(job, fate, inbox)
            how = "put back from the trash"
        try:
            st = src.lstat(src_name)
            if not dry_run and st is not None:
                _bring_back(src, src_name, st, inbox, name, job.content_hash)
                if fate["fate"] == "trashed":
                    _drop_info(info, src_name + ".trashinfo", job.source)
        finally:
            src.close()
            if fate["fate"] == "trashed":
                info.close()
        return how


def _tidy(job: Job, fate: dict, config: Config, roots: set[Path], inbox: DirHandle) -> None:
    """After an interrupted undo put the original back: the archive's copy a cross-device
    move had not removed yet, or the trash's info left behind."""
    try:
        if fate["fate"] == "moved":
            src, src_name = _archived(job, fate, config, roots)
            with src:
                st = src.lstat(src_name)
                if st is not None and _digest(src, src_name) == job.content_hash:
                    _unlink_if_same(src, src_name, st)
        elif fate["fate"] == "trashed" and fate.get("name"):
            files, info = trash_folders(inbox, fate["trash"])
            with files, info:
                if files.lstat(fate["name"]) is None:
                    _drop_info(info, fate["name"] + ".trashinfo", job.source)
    except (_Refused, FileNotFoundError):
        pass  # nothing left to tidy


def _archived(job: Job, fate: dict, config: Config, roots: set[Path]) -> tuple[DirHandle, str]:
    """The archive folder and name holding the original, its content checked."""
    shown = printable(job.source.name)
    if fate.get("path"):
        path = Path(fate["path"])
        candidates = [path.name]
    else:  # not recorded: the names the move would have taken, in its archive folder
        watch = config.watch_for(job.source)
        if watch is None or watch.archive is None or job.inbox is None:
            raise _Refused(f"{shown}: cannot undo: the journal does not say where it was moved")
        path = watch.archive / job.source.parent.relative_to(job.inbox) / job.source.name
        candidates = list(itertools.islice(name_choices(job.source.name), _SEARCH))
    gone = (
        f"{shown}: cannot undo: the original is no longer in the archive ({printable(str(path))})"
    )
    top, below = within(path.parent, roots | {path.parent})
    try:
        folder = open_dir(top, below, verb="restore")
    except (FileNotFoundError, NotADirectoryError):
        raise _Refused(gone) from None
    for candidate in candidates:
        if _digest(folder, candidate) == job.content_hash:
            return folder, candidate
    folder.close()
    raise _Refused(gone)


def _trashed(job: Job, fate: dict, inbox: DirHandle) -> tuple[DirHandle, str, DirHandle]:
    """The trash's ``files`` folder and name holding the original, and its ``info``."""
    shown = printable(job.source.name)
    if fate.get("name"):
        places = [(fate["trash"], [fate["name"]])]
    else:  # not recorded: the names trash() tries, in the home trash, then the volume's
        stem, ext = os.path.splitext(job.source.name)
        names = [job.source.name] + [f"{stem} {n}{ext}" for n in range(1, _SEARCH)]
        places = [(HOME, names), (f".Trash-{os.getuid()}", names)]
    for where, names in places:
        try:
            files, info = trash_folders(inbox, where)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for candidate in names:
            if _digest(files, candidate) == job.content_hash:
                return files, candidate, info
        files.close()
        info.close()
    raise _Refused(f"{shown}: cannot undo: the original is no longer in the trash")


def _drop_info(info: DirHandle, name: str, source: Path) -> None:
    """Remove the trash's info file, if it is the one naming ``source``."""
    try:
        fd = info.open_read(name)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as f:
        text = f.read(1 << 16)
    for line in text.splitlines():
        if line.startswith(b"Path=") and unquote_to_bytes(line[5:]) == os.fsencode(source):
            info.unlink(name, missing_ok=True)
            info.fsync()
            return


def _bring_back(
    src: DirHandle, src_name: str, st: os.stat_result, inbox: DirHandle, name: str, want: str
) -> None:
    """Move ``src_name`` to ``name`` in the inbox, never over a file there; across
    filesystems a durable copy is linked in before the source is removed."""
    shown = printable(name)
    try:
        src.rename_noreplace(src_name, inbox, name)
    except FileExistsError:
        raise _Refused(f"{shown}: cannot undo: {shown} in the inbox was taken meanwhile") from None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_back(src, src_name, st, inbox, name, want)
        return
    now = inbox.lstat(name)
    if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        inbox.give_back(name, src, src_name)  # another file was renamed over it: not ours
        raise _Refused(f"{shown}: cannot undo: the original changed while being put back")
    inbox.fsync()
    src.fsync()


def _copy_back(
    src: DirHandle, src_name: str, st: os.stat_result, inbox: DirHandle, name: str, want: str
) -> None:
    shown = printable(name)
    temp = _hidden("restoring", name)
    inbox.unlink(temp, missing_ok=True)  # an interrupted copy's
    fd_in = src.open_read(src_name)
    try:
        if (os.fstat(fd_in).st_dev, os.fstat(fd_in).st_ino) != (st.st_dev, st.st_ino):
            raise _Refused(f"{shown}: cannot undo: the original changed while being put back")
        fd_out = inbox.open_new(temp, stat.S_IMODE(st.st_mode) & 0o777)
        try:
            digest = hashlib.sha256()
            while chunk := os.read(fd_in, 1 << 20):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
            _copy_xattrs(fd_in, fd_out)
            os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(fd_out)
        except BaseException:
            os.close(fd_out)
            inbox.unlink(temp, missing_ok=True)
            raise
        os.close(fd_out)
    finally:
        os.close(fd_in)
    if digest.hexdigest() != want:
        inbox.unlink(temp, missing_ok=True)
        raise _Refused(f"{shown}: cannot undo: the original changed while being put back")
    crash_point("undo:copied")
    try:
        inbox.link_noreplace(temp, inbox, name)
    except FileExistsError:
        inbox.unlink(temp, missing_ok=True)
        raise _Refused(f"{shown}: cannot undo: {shown} in the inbox was taken meanwhile") from None
    inbox.unlink(temp, missing_ok=True)
    inbox.fsync()
    crash_point("undo:linked")
    _unlink_if_same(src, src_name, st)


# --- the outputs ---------------------------------------------------------------------------


def _remove_output(path: Path, want: str, roots: set[Path], *, dry_run: bool) -> str | None:
    """Remove ``path`` if it holds the bytes written; None when removed, "gone" when it
    was not there, else why it is kept. The file is renamed aside (a hidden name) before
    it is checked the last time and removed: whatever holds the name is what is checked."""
    top, below = within(path.parent, roots | {path.parent})
    try:
        folder = open_dir(top, below, verb="remove")
    except (FileNotFoundError, NotADirectoryError):
        return "gone"
    except (SymlinkRefused, Escape) as exc:  # never removed through a link: said, left
        return f"{printable(str(exc))}; left in place"
    with folder:
        name, aside = path.name, _hidden("undoing", path.name)
        if folder.lstat(aside) is not None and not dry_run:  # an interrupted removal's
            if _digest(folder, aside) == want:
                folder.unlink(aside)
                folder.fsync()
                if folder.lstat(name) is None:
                    return None
            else:
                folder.give_back(aside, folder, name)
        if folder.lstat(name) is None:
            return "gone"
        if not want:
            return "no content hash was recorded for it; left in place"
        if _digest(folder, name) != want:
            return "it changed since it was written"
        if dry_run:
            return None
        try:
            folder.rename_noreplace(name, folder, aside)
        except FileNotFoundError:
            return "gone"
        if _digest(folder, aside) != want:  # rewritten between the check and the rename
            folder.give_back(aside, folder, name)
            return "it changed since it was written"
        folder.unlink(aside)
        folder.fsync()
        return None
