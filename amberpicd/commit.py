"""The parent's half of a job: publish what a worker staged, then handle the original.

The original is touched only after every output of every rule is published (renamed
into place, directory fsynced). A ``Recorder`` (the daemon's journal) is told each step
before the next, so a crash at any moment can be finished, never repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from amberpicd.errors import FileError, OutputError, error_text
from amberpicd.originals import handle_original
from amberpicd.output.writer import discard, publish
from amberpicd.pipeline import FileResult


class Recorder(Protocol):
    """Told each step of a commit before the next one happens (the daemon's journal)."""

    def staged(self, result: FileResult) -> None: ...
    def publishing(self, n: int, name: Path) -> None: ...
    def published(self, outputs: list[Path]) -> None: ...


@dataclass(frozen=True)
class OriginalsPolicy:
    policy: str = "keep"  # keep | move | trash | delete
    archive: Path | None = None


@dataclass
class Report:
    """The outcome of one input file, as the CLI and the journal report it."""

    source: Path
    status: str  # done | failed | unmatched | skipped
    outputs: list[Path] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    error: str | None = None
    original: Path | None = None  # where the original is now (None: trashed/deleted)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "status": self.status,
            "outputs": [str(p) for p in self.outputs],
            "rules": self.rules,
            "error": self.error,
        }


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
        report.status = "done"
        return report
    if recorder is not None:
        recorder.staged(result)
    try:
        for n, out in enumerate(result.outputs):
            assert out.staged is not None
            hook = None if recorder is None else partial(recorder.publishing, n)
            final = publish(out.staged, hook)
            if final is not None:
                report.outputs.append(final)
    except OSError as exc:
        for out in result.outputs:
            if out.staged is not None:
                discard(out.staged)
        error = OutputError(result.path, error_text(exc))
        report.status, report.error = "failed", str(error)
        return report
    if recorder is not None:
        recorder.published(report.outputs)
    report.status = "done" if report.outputs else "skipped"
    try:
        report.original = handle_original(
            result.path,
            originals.policy,
            archive=originals.archive,
            relpath=relpath,
            identity=result.identity,
        )
    except FileError as exc:
        report.status, report.error = "failed", str(exc)
    return report
