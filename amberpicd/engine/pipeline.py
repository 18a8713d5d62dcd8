"""One file through its rules, in a worker process: read once → match → decode once →
each rule's operations → encode → stage (temp file + fsync). Nothing is published here;
``commit`` does that in the parent, after the journal knows what was staged.

    run(job) = read_source (bytes + identity) → sha256 → Source(facts) → matching_rules
               → plan (engine/plan.py: decode size, outputs in order, each one's steps)
               → decode(plan.decode)
               → for each planned output, larger first: its steps (from the decode, or from
                 a larger output's resized picture when ``derive`` finds that safe)
               → encode → render path → stage
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from amberpicd.config.schema import Limits, Rule
from amberpicd.engine import derive
from amberpicd.engine.plan import RulePlan, file_plan, rule_plan
from amberpicd.errors import (
    FileError,
    OperationError,
    OutputError,
    SourceChanged,
    WorkerError,
    WorkerLost,
    error_text,
    printable,
)
from amberpicd.fs.confined import Escape, SymlinkRefused, within
from amberpicd.fs.identity import FileIdentity
from amberpicd.imaging.compress import encode_output
from amberpicd.imaging.decode import Source, read_source
from amberpicd.imaging.encode import default_spec
from amberpicd.imaging.picture import Picture
from amberpicd.imaging.sniff import SNIFF_BYTES, sniff
from amberpicd.ops.base import Operation
from amberpicd.output.template import TemplateValues, fixed_root, render
from amberpicd.output.writer import StagedOutput, discard, probe, stage
from amberpicd.rules.facts import Facts
from amberpicd.rules.match import matching_rules


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


# Names that say "image": such a file whose content is none is broken, and fails.
IMAGE_SUFFIXES = frozenset(
    "jpg jpeg jpe jfif png apng gif webp tif tiff bmp dib heic heif hif avif psd eps pdf".split()  # noqa: SIM905
)


def claims_image(path: Path) -> bool:
    """Whether the file's name says it is an image (its content decides what it is)."""
    return path.suffix.lower().removeprefix(".") in IMAGE_SUFFIXES


def transform(picture: Picture, ops: tuple[Operation, ...], path: Path) -> Picture:
    """Apply ``ops`` (a plan's, so pixels end upright)."""
    for op in ops:
        try:
            picture = op.apply(picture)
        except (ValueError, OSError, TypeError) as exc:
            raise OperationError(path, f"{op.name}: {exc}") from None
        except MemoryError:
            raise OperationError(path, f"{op.name}: out of memory (worker_memory limit)") from None
    return picture


def run(job: FileJob, host: Host = INLINE) -> FileResult:
    """Process one file up to staged outputs. Never raises for a bad file: the result
    carries the one-line error instead, and anything staged so far is removed."""
    started = time.monotonic()
    result = FileResult(path=job.path, status="failed")
    host.limit_memory(int(job.limits.worker_memory))
    try:
        try:
            data, identity = read_source(job.path, job.limits, job.relpath, job.roots)
        except SourceChanged as exc:
            result.status, result.error = "changed", str(exc)
            return result
        result.content_hash = hashlib.sha256(data).hexdigest()
        result.identity = replace(identity, content_hash=result.content_hash)
        result.identity_settled = identity.settled(time.time_ns())
        if result.content_hash in job.done_hashes:
            del data
            result.status = "already"
            return result
        if sniff(data[:SNIFF_BYTES]) is None and not claims_image(job.path):
            # README.txt, a Makefile: not ours to process, and not a failure either.
            result.status, result.error = "skipped", f"{printable(job.path.name)}: not an image"
            return result
        mtime = identity.mtime_ns / 1e9
        source = Source(job.path, data, job.limits, mtime=mtime, content_hash=result.content_hash)
        plans = [rule_plan(r) for r in job.rules]
        # Kept only for rules that may write the source itself (optimize, min_saving).
        original = data if any(p.wants_source for p in plans) else None
        del data
        facts = result.facts = source.facts
        rules = matching_rules(job.rules, facts)
        result.rules = [r.name for r in rules]
        if not rules:
            result.status = "unmatched"
            return result
        upright = (facts.width, facts.height)
        matched = {id(r) for r in rules}
        plan = file_plan([p for p in plans if id(p.rule) in matched], upright, facts.orientation)
        decoded = source.decode(plan.decode)
        made: dict[int, Picture] = {}  # resized upright pictures smaller outputs may start from
        for out in plan.outputs:
            start = derive.start(out.rule.lead, upright, [made[i] for i in out.sources])
            # A made picture is upright already: its steps run without a turn to move late.
            ops = out.ops if start is None else out.rule.steps
            picture = transform(start or decoded, ops, job.path)
            if out.rule.reusable:
                made[out.index] = picture
            result.outputs.append(_one_output(job, out.rule, picture, facts, out.index, original))
        result.outputs.sort(key=lambda out: result.rules.index(out.rule))  # rule order
        result.status = "staged"
    except FileError as exc:
        _discard(result)
        result.error = str(exc)
    except MemoryError:
        _discard(result)
        result.error = f"{printable(job.path.name)}: out of memory (worker_memory limit)"
    except Exception as exc:  # a decoder or bug we did not foresee: one file, not the daemon
        _discard(result)
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        name = printable(job.path.name)
        result.error = f"{name}: unexpected error: {type(exc).__name__}: {printable(detail)}"
    finally:
        result.seconds = time.monotonic() - started
    if result.error is not None and (
        "out of memory" in result.error or "unexpected" in result.error
    ):
        # Memory exhaustion or an unforeseen failure can leave a codec half set up
        # (e.g. a plugin whose import failed): later jobs get a fresh worker.
        host.retire()
    return result


def collect(future: Future[FileResult], job: FileJob) -> FileResult:
    """The worker's result for ``job``, or a failed one saying what became of the worker."""
    try:
        return future.result()
    except WorkerLost as exc:
        error = str(WorkerError(job.path, exc.reason))
    except Exception as exc:  # the pool itself failed for this job
        error = str(WorkerError(job.path, printable(str(exc))))
    return FileResult(job.path, "failed", error=error)


def _one_output(
    job: FileJob, plan: RulePlan, picture: Picture, facts, n: int, original: bytes | None = None
) -> PlannedOutput:
    rule = plan.rule
    spec = rule.encode or default_spec(facts.format)
    # The source may stand in for the output only where the rule leaves pixels as stored.
    source = original if facts.orientation == 1 and plan.as_stored else None
    encoded = encode_output(picture, spec, rule.keep_metadata, job.path, source)
    data = encoded.data
    width, height = picture.size
    values = TemplateValues(
        stem=job.path.stem,
        name=job.path.name,
        ext=encoded.extension,
        rule=rule.name,
        width=width,
        height=height,
        date=facts.date,
        hash=facts.content_hash[:8],
        relpath=job.relpath,
    )
    final = render(rule.output, values, job.path)
    if final.resolve() == job.path.resolve():
        raise OutputError(job.path, f"rule {rule.name} would overwrite the original")
    staged, (root, _) = None, within(fixed_root(rule.output), job.roots)
    try:
        if job.dry_run:  # the same checks, nothing written
            probe(final, root)
        else:
            staged = stage(data, final, rule.on_conflict, f"{job.tag}-{n}", root)
    except (SymlinkRefused, Escape) as exc:
        raise OutputError(job.path, str(exc)) from None
    except OSError as exc:
        raise OutputError(job.path, f"{final}: {error_text(exc, filename=False)}") from None
    return PlannedOutput(
        rule.name,
        final,
        len(data),
        width,
        height,
        staged,
        encoded.format,
        encoded.quality,
        encoded.score,
        encoded.note,
    )


def _discard(result: FileResult) -> None:
    for out in result.outputs:
        if out.staged is not None:
            discard(out.staged)
    result.outputs.clear()
