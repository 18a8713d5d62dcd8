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
from dataclasses import replace
from pathlib import Path

from amberpicd.engine import derive
from amberpicd.engine.job import INLINE, FileJob, FileResult, Host, PlannedOutput
from amberpicd.engine.plan import RulePlan, file_plan, rule_plan
from amberpicd.errors import (
    FileError,
    OperationError,
    OutputError,
    SourceChanged,
    error_text,
    printable,
)
from amberpicd.fs.confined import Escape, SymlinkRefused, within
from amberpicd.imaging.compress import encode_output
from amberpicd.imaging.decode import Source, read_source
from amberpicd.imaging.encode import default_spec
from amberpicd.imaging.picture import Picture
from amberpicd.imaging.sniff import SNIFF_BYTES, sniff
from amberpicd.ops.base import Operation
from amberpicd.output.template import TemplateValues, fixed_root, render
from amberpicd.output.writer import discard, probe, stage
from amberpicd.rules.match import matching_rules

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
