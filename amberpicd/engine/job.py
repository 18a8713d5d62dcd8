"""A job as it crosses between processes: what a worker is given (``FileJob``), what it
hands back (``FileResult`` with its ``PlannedOutput`` list), what the process running it offers
(``Host``), and ``collect``, a worker's future turned into a result.

Plain data with no pixels in it: the daemon's stages, the commit and the journal use these
without importing the imaging side (the pipeline, which fills them, runs in the worker).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from amberpicd.config.schema import Limits, Rule
from amberpicd.errors import WorkerError, WorkerLost, printable
from amberpicd.fs.confined import within
from amberpicd.fs.identity import FileIdentity
from amberpicd.output.template import fixed_root
from amberpicd.output.writer import StagedOutput
from amberpicd.rules.facts import Facts


class Host(Protocol):
    """What the process running a job offers it. The pipeline knows no worker process: a
    pool worker passes ``workers.child.POOL_WORKER``; inline runs (tests, ``--jobs 0``) get
    ``INLINE``, which does nothing."""

    def limit_memory(self, limit: int) -> None:
        """Cap this job's address space (the inbox's ``worker_memory``)."""

    def retire(self) -> None:
        """Ask to be replaced once this job's result is sent."""


class _Inline:
    def limit_memory(self, limit: int) -> None:
        pass

    def retire(self) -> None:
        pass


INLINE: Host = _Inline()


@dataclass(frozen=True)
class FileJob:
    """Everything a worker needs to process one file (picklable)."""

    path: Path
    rules: tuple[Rule, ...]
    limits: Limits
    relpath: str = ""  # sub-folder below the inbox
    tag: str = "job"  # unique per job: names the staged temp files
    dry_run: bool = False
    # Content hashes already decided for this path and these rules: a file found to hold one
    # of them stops right after it is hashed (status "already"), nothing decoded or staged.
    done_hashes: tuple[str, ...] = ()
    # Every folder the config names: a folder below another is walked from the outer one,
    # never resolved by path (fs.confined.within).
    roots: tuple[Path, ...] = ()

    def output_roots(self) -> set[Path]:
        """The confinement root of each rule's output folder: where its worker stages temps
        (``sweep_temps`` below them removes this job's)."""
        return {within(fixed_root(r.output), self.roots)[0] for r in self.rules}


@dataclass(frozen=True)
class PlannedOutput:
    rule: str
    final: Path
    bytes: int
    width: int
    height: int
    staged: StagedOutput | None  # None in a dry run
    format: str | None = None  # what the encoder chose (format: auto), e.g. "webp"
    quality: int | None = None  # the quality used (lossy formats)
    score: float | None = None  # SSIMULACRA2 reached (quality: auto)
    note: str | None = None  # e.g. "min_saving: source rewritten losslessly, 3% smaller"

    def chosen(self) -> dict[str, object]:
        """What the encoder chose, as ``--json`` and the journal record it (unset left
        out): ``{"format": "webp", "quality": 77, "score": 75.9}``."""
        fields = {"format": self.format, "quality": self.quality, "score": self.score}
        return {k: v for k, v in {**fields, "note": self.note}.items() if v is not None}


@dataclass
class FileResult:
    """What a worker did with one file. ``error`` set means it failed; nothing is staged."""

    path: Path
    status: str  # staged | unmatched | skipped (not an image) | failed | already | changed
    rules: list[str] = field(default_factory=list)
    outputs: list[PlannedOutput] = field(default_factory=list)
    error: str | None = None
    # The sha256 of the bytes read and decoded ("" if the file could not be read whole), and
    # the identity of the file those bytes came from (fstat of the descriptor read, unchanged
    # across the read): the original is handled only while it still has this identity.
    content_hash: str = ""
    identity: FileIdentity | None = None
    identity_settled: bool = False  # identity old enough to cache (FileIdentity.settled)
    facts: Facts | None = None  # what the rules matched on (None: not read as an image)
    seconds: float = 0.0


def collect(future: Future[FileResult], job: FileJob) -> FileResult:
    """The worker's result for ``job``, or a failed one saying what became of the worker."""
    try:
        return future.result()
    except WorkerLost as exc:
        error = str(WorkerError(job.path, exc.reason))
    except Exception as exc:  # the pool itself failed for this job
        error = str(WorkerError(job.path, printable(str(exc))))
    return FileResult(job.path, "failed", error=error)
