"""Plan once, then execute: what each rule does to a file, decided before any pixel is
decoded. Immutable data; ``pipeline.run`` executes it and re-derives nothing.

    rule_plan(rule)  per rule, whatever the file: its steps in order (``auto_orient`` first
                     unless the rule places it), the leading resize a smaller output may
                     start from another's picture with, whether its own picture may serve
                     others (``derive``), whether the source bytes may stand in for it.
    file_plan(plans, upright, orientation)
                     per file, from the header's facts: the size to decode at (shrink on
                     load), and the outputs in the order they are made (larger first), each
                     with the steps it runs (orientation turned late), its size when known
                     without pixels, and the earlier outputs it may start from.

Pure computation on the config's models: no Pillow, no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amberpicd.config.schema import Rule
from amberpicd.engine import derive
from amberpicd.ops.auto_orient import AutoOrient, oriented_first
from amberpicd.ops.base import Operation, Size
from amberpicd.ops.resize import Resize


@dataclass(frozen=True)
class RulePlan:
    """One rule, planned: the same for every file."""

    rule: Rule
    steps: tuple[Operation, ...]  # orientation always normalised
    lead: Resize | None  # the resize of an "auto_orient, resize" start (derive.lead_resize)
    reusable: bool  # its picture is the whole upright image scaled down (derive.reusable)
    wants_source: bool  # optimize or min_saving: the source's bytes may be written instead
    as_stored: bool  # nothing but auto_orient: pixels as stored where orientation is 1


@dataclass(frozen=True)
class OutputPlan:
    """One output of one file."""

    index: int  # the rule's place among the file's matching rules
    rule: RulePlan
    ops: tuple[Operation, ...]  # what runs, in order (turn_late applied)
    size: Size | None  # the output size from the header's size, None if unknown before pixels
    sources: tuple[int, ...]  # indices of earlier outputs whose pictures it may start from


@dataclass(frozen=True)
class FilePlan:
    """One file through its matching rules: decode once at ``decode``, then ``outputs``."""

    decode: Size | None  # the smallest upright size every rule can start from; None: full
    outputs: tuple[OutputPlan, ...]  # in execution order


def steps(rule: Rule) -> tuple[Operation, ...]:
    """The rule's operations; orientation is always normalised, so a rule that does not
    place ``auto_orient`` itself gets it first."""
    return oriented_first(rule.operations)


def rule_plan(rule: Rule) -> RulePlan:
    ops = steps(rule)
    spec = rule.encode
    return RulePlan(
        rule=rule,
        steps=ops,
        lead=derive.lead_resize(ops),
        reusable=derive.reusable(ops),
        wants_source=spec is not None and (spec.name == "optimize" or spec.min_saving is not None),
        as_stored=all(isinstance(op, AutoOrient) for op in ops),
    )


def file_plan(plans: Sequence[RulePlan], upright: Size, orientation: int) -> FilePlan:
    """The plan for a file whose header says ``upright`` (size once oriented) and
    ``orientation``, through ``plans`` (its matching rules, in configured order)."""
    sizes = [output_size(p.steps, upright) for p in plans]
    order = derive.order(sizes)
    outputs, reusable = [], []
    for n in order:
        p = plans[n]
        sources = tuple(reusable) if p.lead is not None else ()
        outputs.append(OutputPlan(n, p, turn_late(p.steps, orientation), sizes[n], sources))
        if p.reusable:
            reusable.append(n)
    return FilePlan(decode_need(plans, upright, orientation), tuple(outputs))


def output_size(ops: Sequence[Operation], upright: Size) -> Size | None:
    size: Size | None = upright
    for op in ops:
        size = op.output_size(size) if size is not None else None
    return size


def decode_need(plans: Sequence[RulePlan], upright: Size, orientation: int) -> Size | None:
    """The smallest upright size every rule can start from (shrink on load), or None when
    some rule needs full resolution."""
    need = (0, 0)
    for plan in plans:
        oriented, rule_need = orientation == 1, None
        for op in plan.steps:
            if isinstance(op, AutoOrient):
                oriented = True
                continue
            # Before orientation is applied, sizes are not upright: no shrink hint there.
            rule_need = op.decode_size(upright) if oriented else None
            if rule_need is not None or not oriented or op.output_size(upright) != upright:
                break
        if rule_need is None:
            return None
        need = (max(need[0], rule_need[0]), max(need[1], rule_need[1]))
    return need if need != (0, 0) else None


def turn_late(ops: tuple[Operation, ...], orientation: int) -> tuple[Operation, ...]:
    """``ops`` with a leading "auto_orient, resize" run as "resize, auto_orient" when the
    resize keeps the whole image: the same pixels, but the turn moves the small picture,
    not the full decode. For orientations 5-8 the stored picture lies on its side, so the
    resize box turns too; a fill resize crops by gravity and keeps its place."""
    if orientation == 1 or len(ops) < 2 or not isinstance(ops[0], AutoOrient):
        return ops
    resize = ops[1]
    if not isinstance(resize, Resize) or resize.mode == "fill":
        return ops
    if orientation >= 5:
        resize = resize.model_copy(update={"width": resize.height, "height": resize.width})
    return (resize, ops[0], *ops[2:])
