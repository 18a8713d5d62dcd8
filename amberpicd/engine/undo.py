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
effect (journal writes included) skipped. Putting the original back is engine/restore.py.

May touch: the job's outputs, its original in the archive or a trash, the inbox folder the
original goes back to, the journal (through its API) and ``undo.lock`` beside it (one undo
at a time). Every file is reached through a
folder descriptor walked from a configured root without following links (fs.confined).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from amberpicd.config.schema import Config
from amberpicd.engine.commit import crash_point
from amberpicd.engine.restore import Refused, digest, hidden, restore
from amberpicd.errors import JournalError, printable
from amberpicd.fs.confined import Escape, SymlinkRefused, open_dir, within
from amberpicd.fs.names import give_back
from amberpicd.journal import Job, Journal

LOCK_NAME = "undo.lock"  # beside the journal; never deleted (see daemon/lock.py)
_FATE_OF_POLICY = {"keep": "kept", "move": "moved", "trash": "trashed", "delete": "deleted"}


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


def undo_job(journal: Journal, config: Config, job: Job, *, dry_run: bool = False) -> UndoReport:
    """Undo ``job`` (done, original_failed, or undoing: an undo to finish). One undo at a
    time per journal (two commands, the tray's two clicks, a start's recovery): another
    under way is said, not waited for, and the job is read again once the lock is held."""
    if dry_run:
        return _undo(journal, config, job, dry_run=True)
    with _exclusive(journal) as mine:
        if not mine:
            text = "undo not done: another undo is under way; try again when it ends"
            report = UndoReport(job.source, "failed", job.id)
            return _said(report, "failed", f"{printable(job.source.name)}: {text}")
        return _undo(journal, config, journal.get(job.id), dry_run=False)


@contextmanager
def _exclusive(journal: Journal) -> Iterator[bool]:
    """An exclusive ``flock`` on ``undo.lock`` beside the journal, tried once; False when
    another holds it. The kernel drops it with the holder (a ``kill -9`` leaves none)."""
    try:
        fd = os.open(
            journal.path.with_name(LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:  # e.g. the state folder read-only: said as the journal's trouble
        raise JournalError(f"{LOCK_NAME}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _undo(journal: Journal, config: Config, job: Job, *, dry_run: bool) -> UndoReport:
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
    record = dict(job.undo or {}) if resuming else {"started": time.time()}
    if not dry_run and not resuming:
        journal.begin_undo(job.id, record)
        crash_point("undo:begun")
    if "restored" in record:  # the original's step was done: what is there now is the user's
        report.restored = record["restored"]
    else:
        try:
            report.restored = restore(job, fate, config, roots, dry_run=dry_run, resuming=resuming)
        except (Refused, SymlinkRefused, Escape) as exc:
            text = str(exc) if isinstance(exc, Refused) else f"{name}: cannot undo: {exc}"
            if not dry_run:
                journal.abandon_undo(job.id, {"refused": printable(text), "at": time.time()})
            return _said(report, "refused", printable(text))
        except OSError as exc:
            return _unfinished(report, name, exc, dry_run)
        crash_point("undo:put-back")
        if not dry_run:  # before any output goes: an undo is withdrawn only before that
            journal.undo_step(job.id, {**record, "restored": report.restored})
    crash_point("undo:restored")
    try:
        for n, (path, want) in enumerate(zip(job.outputs, _hashes(job), strict=True)):
            other = journal.other_writer(path, job.id)
            if other is not None:
                when = "a later" if other > job.id else "an earlier"
                report.kept.append((path, f"also the output of {when} job; left in place"))
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
    reason = exc.strerror or printable(str(exc))
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
        name, aside = path.name, hidden("undoing", path.name)
        if folder.lstat(aside) is not None:  # an interrupted removal's (a dry run: said)
            if digest(folder, aside) == want:
                if not dry_run:
                    folder.unlink(aside)
                    folder.fsync()
                if folder.lstat(name) is None:
                    return None
            elif not dry_run:
                give_back(folder, aside, folder, name)
        if folder.lstat(name) is None:
            return "gone"
        if not want:
            return "no content hash was recorded for it; left in place"
        if digest(folder, name) != want:
            return "it changed since it was written"
        if dry_run:
            return None
        try:
            folder.rename_noreplace(name, folder, aside)
        except FileNotFoundError:
            return "gone"
        crash_point("undo:aside")
        if digest(folder, aside) != want:  # rewritten between the check and the rename
            give_back(folder, aside, folder, name)
            return "it changed since it was written"
        folder.unlink(aside)
        folder.fsync()
        return None
