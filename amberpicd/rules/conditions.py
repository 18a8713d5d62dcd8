"""The conditions a rule's ``match`` can set, as one table: each says whether it holds for a
file's Facts and why, in words a user reads (``min_width 800: no, width is 640``).

Matching (``match.matching_rules``) and ``amberpicd explain`` both read this table, so the
reason shown is always the reason the engine decided by. A condition the match leaves unset
is not listed: it cannot stop a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amberpicd.config.schema import Match
from amberpicd.errors import printable
from amberpicd.rules.facts import Facts


@dataclass(frozen=True)
class Verdict:
    """One condition of one rule, evaluated: ``text`` is ``"min_width 800: no, width is 640"``."""

    condition: str
    holds: bool
    text: str

    def as_json(self) -> dict[str, object]:
        return {"condition": self.condition, "holds": self.holds, "text": self.text}


def _yes_no(holds: bool) -> str:
    return "yes" if holds else "no"


def human_bytes(n: int) -> str:
    """``2.4 MB``, ``312.4 kB``, ``512 bytes``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class _Bound:
    """``min_X``/``max_X`` on one fact: holds when the fact is at or above/below the bound."""

    key: str
    fact: str  # the Facts attribute, shown in the reason
    low: bool  # True for min_, False for max_
    show: Callable[[int], str] = str

    def __call__(self, match: Match, facts: Facts) -> Verdict | None:
        bound = getattr(match, self.key)
        if bound is None:
            return None
        value = getattr(facts, self.fact)
        holds = value >= bound if self.low else value <= bound
        label = "size" if self.fact == "size_bytes" else self.fact
        text = f"{self.key} {self.show(bound)}: {_yes_no(holds)}, {label} is {self.show(value)}"
        return Verdict(self.key, holds, text)


def _formats(match: Match, facts: Facts) -> Verdict | None:
    if match.formats is None:
        return None
    holds = facts.format in match.formats
    text = f"formats [{', '.join(match.formats)}]: {_yes_no(holds)}, {facts.format}"
    return Verdict("formats", holds, text)


def _names(match: Match, facts: Facts) -> Verdict | None:
    if match.names is None:
        return None
    holds = match.name_matches(facts.name)
    globs = ", ".join(printable(g) for g in match.names)
    text = f"names [{globs}]: {_yes_no(holds)}, {printable(facts.name)}"
    return Verdict("names", holds, text)


def _orientation(match: Match, facts: Facts) -> Verdict | None:
    if match.orientation == "any":
        return None
    holds = match.orientation == facts.shape
    text = f"orientation {match.orientation}: {_yes_no(holds)}, {facts.shape} (upright)"
    return Verdict("orientation", holds, text)


#: Every condition of ``Match``, in the order the config documents them. A test checks that
#: each field of Match appears here exactly once, so a new condition cannot be forgotten.
CONDITIONS: tuple[Callable[[Match, Facts], Verdict | None], ...] = (
    _formats,
    _names,
    _Bound("min_width", "width", low=True),
    _Bound("max_width", "width", low=False),
    _Bound("min_height", "height", low=True),
    _Bound("max_height", "height", low=False),
    _Bound("min_pixels", "pixels", low=True),
    _Bound("max_pixels", "pixels", low=False),
    _Bound("min_bytes", "size_bytes", low=True, show=human_bytes),
    _Bound("max_bytes", "size_bytes", low=False, show=human_bytes),
    _orientation,
)

#: The Match fields each table entry reads (for the completeness test).
CONDITION_FIELDS: tuple[str, ...] = tuple(
    c.key if isinstance(c, _Bound) else c.__name__.lstrip("_") for c in CONDITIONS
)


def verdicts(match: Match, facts: Facts) -> list[Verdict]:
    """Every condition ``match`` sets, evaluated for ``facts``, in table order."""
    return [v for c in CONDITIONS if (v := c(match, facts)) is not None]
