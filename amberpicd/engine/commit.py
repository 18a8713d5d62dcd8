"""The parent's half of a job: publish what a worker staged, then handle the original.

The original is touched only after every output of every rule is published (renamed
into place, directory fsynced); an output skipped because its name is taken means the
original stays where it is. A ``Recorder`` (the daemon's journal) is told each step
before the next, so a crash at any moment can be finished, never repeated.

Publishing is idempotent: an output name that already holds exactly the bytes staged, that
the journal does not know as another file's output, and that is not older than the source
file, is this job's output from an earlier, interrupted or unrecorded run, so it counts as
published and no ``-1`` copy is made.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from amberpicd.engine.job import FileResult
from amberpicd.engine.originals import place_original
from amberpicd.errors import FileError, OutputError, error_text, printable
from amberpicd.fs.confined import DirHandle, Escape, SymlinkRefused
from amberpicd.fs.identity import FileIdentity
from amberpicd.fs.names import name_choices
from amberpicd.output.writer import StagedOutput, discard, publish

if TYPE_CHECKING:  # a type only: committing needs no pixels, so no Pillow (the pipeline's)
    from amberpicd.engine.pipeline import FileResult

# Test-only fault injection (tests/test_exactly_once.py, tests/test_commitflow.py): the daemon
# SIGKILLs itself at the named step of a job's life, e.g. AMBERPIC_TEST_CRASH_AT=published:1,
# or hangs there for ever with "hang@published:1" (a stuck dispatcher, for the watchdog test).
# Read once at import; unset (always, outside those tests) it costs one comparison per step.
_CRASH_AT = os.environ.get("AMBERPIC_TEST_CRASH_AT") or None


def crash_point(step: str) -> None:
    """Test-only: die (or hang) here, as a power cut or a deadlock would, when asked to."""
    if _CRASH_AT is None:
        return
    if step == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    if f"hang@{step}" == _CRASH_AT:
        threading.Event().wait()


class Recorder(Protocol):
    """Told each step of a commit before the next one happens (the daemon's journal)."""

    def staged(self, result: FileResult) -> None: ...
    def publishing(self, n: int, name: Path) -> None: ...
    def published(self, outputs: list[Path]) -> None: ...
    def foreign(self, path: Path) -> bool:
        """Whether ``path`` is known as the output of another source file."""
        ...

    def mine(self, path: Path) -> bool:
        """Whether ``path`` is known as a published output of this very source path."""
        ...


@dataclass(frozen=True)
class OriginalsPolicy:
    policy: str = "keep"  # keep | move | trash | delete
    archive: Path | None = None
    roots: tuple[Path, ...] = ()  # every folder the config names (fs.confined.within)


@dataclass
class Report:
    """The outcome of one input file, as the CLI and the journal report it."""

    source: Path
    status: str  # done | failed | unmatched | skipped | already (done before: process)
    outputs: list[Path] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    error: str | None = None
    original: Path | None = None  # where the original is now (None: trashed/deleted)
    seconds: float = 0.0
    step: str = ""  # "original": outputs are written, only the original step failed
    note: str | None = None  # said alongside success, e.g. why the original was kept
    kept: bool = False  # an output was skipped (name taken): the original stays, any policy
    fate: dict | None = None  # where the original went (originals.Fate), for the journal
    # Per output written, what its encoder chose (PlannedOutput.chosen: format, quality,
    # SSIMULACRA2 score reached, note), with "output" its path.
    encodes: list[dict[str, object]] = field(default_factory=list)
    job_id: int | None = None  # the journal's job (the tray's Undo names it, not the path)

    def as_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "status": self.status,
            "outputs": [str(p) for p in self.outputs],
            "rules": self.rules,
            "error": self.error,
            "encodes": self.encodes,
        }


_VERBS = {"move": "move", "trash": "trash", "delete": "delete"}


def original_error(path: Path, policy: str, exc: BaseException) -> str:
    """``IMG_1.jpg: outputs written; could not move the original: disk full (No space…)``."""
    reason = getattr(exc, "reason", None) or str(exc)
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, SymlinkRefused | Escape):
        reason = printable(str(cause))  # names the folder refused, in its own words
    elif isinstance(cause, OSError) and cause.strerror:
        reason = cause.strerror
        other = os.fsdecode(cause.filename) if cause.filename else None
        if other and Path(other) != path:  # e.g. the trash or archive folder: say which
            reason = f"{reason}: {printable(other)}"
        if cause.errno == errno.ENOSPC:
            where = "archive disk" if policy == "move" else "disk"
            reason = f"{where} full ({cause.strerror})"
    verb = _VERBS.get(policy, policy)
    return f"{printable(path.name)}: outputs written; could not {verb} the original: {reason}"


def finish_original(
    path: Path,
    originals: OriginalsPolicy,
    *,
    relpath: str,
    identity: FileIdentity | None,
    report: Report,
) -> None:
    """The original step alone (also what ``retry`` and recovery resume): on failure the
    report says ``step="original"`` and why; outputs stay as they are."""
    try:
        fate = place_original(
            path,
            originals.policy,
            archive=originals.archive,
            relpath=relpath,
            identity=identity,
            roots=originals.roots,
        )
        report.original, report.fate = fate.path, fate.as_json()
    except FileError as exc:
        report.status, report.step = "failed", "original"
        report.error = original_error(path, originals.policy, exc)


def commit(
    result: FileResult,
    originals: OriginalsPolicy,
    *,
    relpath: str = "",
    dry_run: bool = False,
    recorder: Recorder | None = None,
) -> Report:
    """Publish ``result``'s staged outputs and apply the originals policy."""
    report = Report(result.path, result.status, rules=list(result.rules), seconds=result.seconds)
    report.original = result.path
    if result.status != "staged":
        report.error = result.error
        return report
    if dry_run:
        report.outputs = [out.final for out in result.outputs]
        report.encodes = [{"output": str(o.final), **o.chosen()} for o in result.outputs]
        report.status = "done"
        return report
    staged = [out.staged for out in result.outputs if out.staged is not None]
    crash_point("staged")
    try:
        if recorder is not None:
            recorder.staged(result)
        crash_point("recorded")
        try:
            born = result.identity.ctime_ns if result.identity is not None else None
            skipped = _publish_all(staged, recorder, report, born)
        except OSError as exc:
            error = OutputError(result.path, error_text(exc))
            report.status, report.error = "failed", str(error)
        # Recorded while every temp still exists (a second link of a published output,
        # or a skipped one's): a crash before this record is recovered by publishing the
        # temps again (a name linked already is found, a skip is found again), and a temp
        # gone from a staged job never passes for published (recovery runs it again).
        if recorder is not None:
            recorder.published(report.outputs)
        _discard_all(staged)  # recorded: the temps are needed no more
        crash_point("all_published")
    finally:
        _discard_all(staged)  # whatever happened, no temp file stays behind
    if report.status == "failed":
        return report
    report.encodes = _encodes(result, skipped, report.outputs)
    report.status = "done" if report.outputs else "skipped"
    report.kept = bool(skipped)
    if skipped and originals.policy != "keep":
        names = ", ".join(printable(p.name) for p in skipped)
        report.note = (
            f"{printable(result.path.name)}: kept the original: {names} taken"
            " (on_conflict: skip), so not every output was written"
        )
        return report
    finish_original(
        result.path,
        originals,
        relpath=relpath,
        identity=result.identity,
        report=report,
    )
    crash_point("original")
    return report


def _encodes(result: FileResult, skipped: list[Path], written: list[Path]) -> list[dict]:
    """``Report.encodes``: the staged outputs in order, less those skipped as taken,
    are the ones written (``_publish_all`` keeps that order)."""
    skips = list(skipped)
    kept = []
    for out in result.outputs:
        if out.staged is None:
            continue
        if out.staged.final in skips:
            skips.remove(out.staged.final)
            continue
        kept.append(out)
    return [{"output": str(p), **o.chosen()} for o, p in zip(kept, written, strict=False)]


def _discard_all(staged: list[StagedOutput]) -> None:
    while staged:
        discard(staged.pop())


def _publish_all(
    staged: list[StagedOutput], recorder: Recorder | None, report: Report, born: int | None
) -> list[Path]:
    """Publish each staged output in order; returns the finals skipped as taken."""
    skipped: list[Path] = []
    for n, out in enumerate(staged):

        def hook(name: Path, n: int = n) -> None:
            if recorder is not None:
                recorder.publishing(n, name)

        final = already_published(out, recorder, born)
        if final is not None:
            hook(final)
            discard(out)
        else:
            final = publish(out, hook)
        if final is None:
            skipped.append(out.final)
        else:
            report.outputs.append(final)
        crash_point(f"published:{n}")
    return skipped


def already_published(
    out: StagedOutput, recorder: Recorder | None, born: int | None = None
) -> Path | None:
    """The name under which ``out``'s exact bytes are already published by this source's
    job (an earlier run that crashed, or whose journal was lost), or None. Looked at through
    the confined output folder, as publish does: a link or a swapped folder is never ours.

    The same bytes are not enough: an identical file (same content, same rules) makes
    the same bytes. A name counts only if the journal knows no other source made it, and
    either knows this source path published it or it was made after this file came to be
    (its inode's ctime is not older than ``born``, the source's ctime, at the precision the
    output's filesystem keeps): an unknown output older than the file is another file's,
    e.g. an identical photo's whose original was deleted and whose record a fresh journal
    lacks."""
    try:
        with out.folder() as folder:
            st = folder.lstat(out.temp.name)
            if st is None or not stat.S_ISREG(st.st_mode):
                return None
            final = out.final
            tried = name_choices(final.name) if out.on_conflict == "rename" else [final.name]
            for name in tried:
                other = folder.lstat(name)
                if other is None:
                    return None  # publish would take this free name: nothing further is ours
                if (
                    stat.S_ISREG(other.st_mode)
                    and other.st_size == st.st_size
                    and _same_bytes(folder, out.temp.name, name)
                    and _ours(final.with_name(name), other, recorder, born)
                ):
                    return final.with_name(name)
    except OSError:  # publish says what is wrong with the folder, in its own words
        return None
    return None


# File times coarser than nanoseconds, coarsest first: FAT without long names keeps two
# seconds, exFAT through FUSE whole ones, vfat's creation time 10 ms; each rounds down.
_COARSE_NS = (2_000_000_000, 1_000_000_000, 10_000_000)


def _not_older(output_ns: int, born: int) -> bool:
    """Whether an output time is not older than the file's, at the output's own precision:
    written in the very second its source appeared, a whole-second time (rounded down)
    would read as older than the file's nanoseconds."""
    unit = next((u for u in _COARSE_NS if output_ns % u == 0), 1)
    return output_ns >= born - born % unit


def _ours(path: Path, st: os.stat_result, recorder: Recorder | None, born: int | None) -> bool:
    if recorder is not None and recorder.foreign(path):
        return False
    if recorder is not None and recorder.mine(path):
        return True  # this path's published output, whatever the file's ctime now
    return born is None or _not_older(st.st_ctime_ns, born)


def _same_bytes(folder: DirHandle, a: str, b: str) -> bool:
    fa = folder.open_read(a)
    try:
        fb = folder.open_read(b)
    except OSError:
        os.close(fa)
        return False
    with os.fdopen(fa, "rb") as x, os.fdopen(fb, "rb") as y:
        while True:
            ca, cb = x.read(1 << 20), y.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True
