"""``amberpicd explain``: why each rule does or does not apply to a file, and what a run
would do with it, computed by the engine's own code with side effects guarded.

The facts are those ``pipeline.run`` (in a dry run) matched on, the verdicts come from the
same ``rules.match.evaluate`` the engine matches by, and the outputs from that dry run
followed by ``commit(dry_run=True)``: the names shown are the names a real run
picks, conflicts included. Hostile files are read in a worker process, as the daemon does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amberpicd.config.schema import Config
from amberpicd.engine.batch import DryNames, free_name, plan
from amberpicd.engine.commit import OriginalsPolicy, commit
from amberpicd.engine.job import INLINE, FileJob, FileResult, Host, collect
from amberpicd.engine.pipeline import run
from amberpicd.errors import printable
from amberpicd.rules.conditions import human_bytes
from amberpicd.rules.facts import Facts
from amberpicd.rules.match import RuleDecision, evaluate
from amberpicd.workers.child import POOL_WORKER, engine_setup
from amberpicd.workers.pool import ENGINE, WorkerPool

#: EXIF orientation: what turns the stored pixels upright (the facts are upright sizes).
ORIENTATIONS = {
    1: "as stored",
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° anticlockwise",
}


@dataclass
class Inspection:
    """What a worker found: the file's facts, each rule's decision, the dry run's result."""

    facts: Facts | None
    decisions: list[RuleDecision] = field(default_factory=list)
    result: FileResult | None = None
    error: str | None = None


def inspect(job: FileJob, host: Host = INLINE) -> Inspection:
    """In a worker: the pipeline as a dry run (everything but staging: real encodes, so
    real sizes), then every rule decided on the facts the pipeline matched on."""
    result = run(job, host)
    if result.facts is None:  # not an image, unreadable, or failed before its header
        return Inspection(None, error=result.error or f"{job.path.name}: not read")
    return Inspection(result.facts, evaluate(job.rules, result.facts), result)


@dataclass(frozen=True)
class WouldWrite:
    """One output a run would write, under the name it would pick today."""

    rule: str
    path: Path
    bytes: int
    width: int
    height: int

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "path": str(self.path)}


@dataclass
class Explanation:
    """One file explained, ready to print or to dump as JSON."""

    path: Path
    inbox: Path | None
    facts: Facts | None
    decisions: list[RuleDecision]
    outputs: list[WouldWrite]
    original: str
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        facts = None
        if self.facts is not None:
            f = self.facts
            facts = {
                "format": f.format,
                "bytes": f.size_bytes,
                "width": f.width,
                "height": f.height,
                "orientation": f.orientation,
                "date": f.date.isoformat(sep=" "),
                "date_source": f.date_source,
            }
        rules = [
            {
                "rule": d.rule.name,
                "applies": d.applies,
                "stopped_by": d.stopped_by,
                "conditions": [v.as_json() for v in d.verdicts],
            }
            for d in self.decisions
        ]
        return {
            "source": str(self.path),
            "inbox": str(self.inbox) if self.inbox else None,
            "facts": facts,
            "rules": rules,
            "outputs": [o.as_json() for o in self.outputs],
            "original": self.original,
            "error": self.error,
        }


def _original(originals: OriginalsPolicy, job: FileJob, done: bool) -> str:
    """What a real run would do with the original, in words."""
    if not done or originals.policy == "keep":
        reason = "" if done else " (nothing would be written)"
        return f"kept where it is{reason}"
    if originals.policy == "move":
        assert originals.archive is not None
        target = originals.archive / job.relpath / job.path.name
        target = free_name(target, "rename", os.path.lexists) or target  # never clobbers
        return f"moved to {printable(str(target))}"
    if originals.policy == "trash":
        return "moved to the trash"
    return "deleted"


def _explained(
    job: FileJob, originals: OriginalsPolicy, inbox: Path | None, found: Inspection, names: DryNames
) -> Explanation:
    outputs: list[WouldWrite] = []
    error = found.error
    done = False
    if found.result is not None:
        report = commit(found.result, originals, relpath=job.relpath, dry_run=True)
        error = error or report.error
        if report.status == "done":
            for out, name in names.placed(found.result):
                outputs.append(WouldWrite(out.rule, name, out.bytes, out.width, out.height))
        done = bool(outputs)
    original = _original(originals, job, done)
    return Explanation(job.path, inbox, found.facts, found.decisions, outputs, original, error)


def explain(config: Config, paths: Iterable[Path], *, jobs: int = 1) -> Iterator[Explanation]:
    """Explain each file in ``paths`` (in order), decoding in ``jobs`` worker processes."""
    with WorkerPool(
        max(1, jobs),
        memory_limit=int(config.limits.worker_memory),
        initializer=engine_setup,
        preload=ENGINE,
    ) as pool:
        names = DryNames(config)
        for path in paths:
            job, originals = plan(config, path, dry_run=True)
            watch = config.watch_for(job.path)
            future = pool.submit(inspect, job, POOL_WORKER, timeout=job.limits.job_timeout)
            try:
                found = future.result()
            except Exception:  # the worker died or overran: say so as the engine would
                found = Inspection(None, error=collect(future, job).error)
            yield _explained(job, originals, watch.inbox if watch else None, found, names)


def lines(item: Explanation) -> list[str]:
    """The plain-text explanation of one file: facts, every rule and why, the outcome."""
    out = [printable(str(item.path))]
    f = item.facts
    if f is None:
        out.append(f"  not processed: {item.error}")
        return out
    turned = ORIENTATIONS.get(f.orientation, "as stored")
    out.append(
        f"  facts: {f.format}, {human_bytes(f.size_bytes)}, {f.width}x{f.height} upright"
        f" (orientation {f.orientation}: {turned}), {f.frames} frame{'s' if f.frames != 1 else ''}"
    )
    out.append(f"  date: {f.date:%Y-%m-%d %H:%M:%S} (from {f.date_source})")
    where = f"inbox {printable(str(item.inbox))}" if item.inbox else "outside every inbox"
    out.append(f"  watch: {where}")
    if not item.decisions:
        out.append("  no rules apply to this watch entry")
    for d in item.decisions:
        if d.stopped_by is not None:
            out.append(f'  rule {d.rule.name}: not tried: stopped by rule "{d.stopped_by}" (stop)')
            continue
        verdict = "applies" if d.applies else "does not apply"
        out.append(f"  rule {d.rule.name}: {verdict}")
        if not d.verdicts:
            out.append("    no conditions: every image")
        out.extend(f"    {v.text}" for v in d.verdicts)
        for o in item.outputs:
            if o.rule == d.rule.name:
                shown, size = printable(str(o.path)), human_bytes(o.bytes)
                out.append(f"    would write {shown} ({o.width}x{o.height}, {size})")
    if item.error is not None:
        out.append(f"  would fail: {item.error}")
    out.append(f"  original: would be {item.original}")
    return out
