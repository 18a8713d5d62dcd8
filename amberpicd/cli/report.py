"""How results reach a person or a script: one line per file, JSON lines, a progress bar,
the run's last line (counts, bytes saved, time), and the plain-text summary of a config for
``amberpicd check``."""

from __future__ import annotations

import json
import re
import sys
from typing import TextIO

from amberpicd.config.schema import Config, Rule, Watch
from amberpicd.engine.commit import Report
from amberpicd.errors import printable

_SURROGATE = re.compile("[\udc80-\udcff]")


def json_line(report: Report) -> str:
    """The report as one line of JSON (see ``json_text``)."""
    return json_text(report.as_json())


def json_text(doc: dict[str, object]) -> str:
    """One JSON object, valid UTF-8 whatever the file names: an undecodable byte in a
    name (a surrogate escape) is written as a ``\\udcNN`` escape, which ``json.loads``
    turns back into the same string, and ``os.fsencode`` into the original bytes."""
    text = json.dumps(doc, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def located(report: Report, name: str | None) -> str | None:
    """``report.error`` naming the file as ``name`` (``generator/Gemfile: ...``) instead
    of the bare file name every error starts with."""
    bare = f"{printable(report.source.name)}: "
    error = report.error
    if error is None or name is None or not error.startswith(bare):
        return error
    return f"{name}: {error.removeprefix(bare)}"


def human_line(report: Report, dry_run: bool = False, name: str | None = None) -> str:
    """One line for ``report``; ``name`` is the file as the run shows it (default: its name)."""
    error = located(report, name)
    name = name if name is not None else printable(report.source.name)
    if report.status == "failed":
        return f"failed  {error}"
    if report.status == "already":
        return f"already {name}: done before (same name, content and rules)"
    if report.status == "unmatched":
        return f"skipped {name}: no rule matches"
    if report.status == "skipped":
        if error:  # "generator/Gemfile: not an image"
            return f"skipped {error}"
        if report.note:  # "a.jpg: being processed by another amberpicd (pid 812); left to it"
            return f"skipped {name}: {report.note}"
        return f"skipped {name}: outputs exist (on_conflict: skip)"
    verb = "would write" if dry_run else "wrote"
    targets = ", ".join(printable(str(p)) for p in report.outputs)
    return f"done    {name}: {verb} {targets}"


def size_text(n: int) -> str:
    """Bytes as people read them: ``512 B``, ``48.1 KB``, ``9.7 MB``, ``1.2 GB`` (SI units)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def summary_line(counts: dict[str, int], bytes_in: int, bytes_out: int, seconds: float) -> str:
    """The run's last line: ``12 done, 2 skipped, 0 failed · 48.1 MB → 9.7 MB (-80 %) · 6.2 s``
    (with a real minus sign).
    Files no rule matched count as skipped; sizes are those of the files done. Files done
    before (``already``) are counted apart, with how to redo them."""
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    skipped = counts.get("skipped", 0) + counts.get("unmatched", 0)
    already = counts.get("already", 0)
    before = f"{already} already done (use --force to redo), " if already else ""
    parts = [f"{done} done, {before}{skipped} skipped, {failed} failed"]
    if done and bytes_in:
        change = round(100 * (bytes_out - bytes_in) / bytes_in)
        sign = "\u2212" if change < 0 else "+"  # a real minus sign
        parts.append(f"{size_text(bytes_in)} → {size_text(bytes_out)} ({sign}{abs(change)} %)")
    parts.append(f"{seconds:.1f} s")
    return " · ".join(parts)


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() and total > 1

    def update(self, report: Report) -> None:
        self.done += 1
        self.failed += report.status == "failed"
        if not self.enabled:
            return
        width = 30
        filled = width * self.done // max(1, self.total)
        bar = "#" * filled + "-" * (width - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        self.stream.write(f"\r[{bar}] {self.done}/{self.total}{failed}")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def describe_rule(rule: Rule) -> list[str]:
    steps = []
    for step in rule.pipeline:
        options = step.model_dump(exclude_defaults=True, mode="json")
        args = ", ".join(f"{k}={v}" for k, v in options.items())
        steps.append(f"{step.name}({args})" if args else step.name)
    conditions = rule.match.model_dump(exclude_defaults=True, mode="json")
    match = ", ".join(f"{k}={v}" for k, v in conditions.items()) or "every image"
    lines = [
        f"  rule {rule.name}: {match}",
        f"    pipeline: {' → '.join(steps)}",
        f"    output:   {rule.output} (on conflict: {rule.on_conflict})",
        f"    keeps metadata: {', '.join(rule.keep_metadata) or 'none'}",
    ]
    if rule.stop:
        lines.append("    stop: later rules do not run")
    return lines


def describe_watch(config: Config, watch: Watch) -> list[str]:
    where = f" → archive {watch.archive}" if watch.originals == "move" else ""
    lines = [
        f"inbox {watch.inbox}{' (recursive)' if watch.recursive else ''}"
        f"{'' if watch.enabled else ' (disabled)'}",
        f"  originals: {watch.originals}{where}",
    ]
    for rule in config.rules_for(watch):
        lines.extend(describe_rule(rule))
    return lines


def describe_config(config: Config) -> str:
    lines: list[str] = []
    for watch in config.watch:
        lines.extend(describe_watch(config, watch))
    if not config.watch:
        lines.append("no inboxes (this config is for `amberpicd process`)")
        for rule in config.rules:
            lines.extend(describe_rule(rule))
    return "\n".join(lines)
