"""Decide which rules of a config apply to one file's Facts."""

from __future__ import annotations

from collections.abc import Iterable

from amberpicd.config.schema import Match, Rule
from amberpicd.facts import Facts


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def conditions_hold(match: Match, facts: Facts) -> bool:
    """True when every condition that ``match`` sets holds for ``facts``."""
    return (
        (match.formats is None or facts.format in match.formats)
        and match.name_matches(facts.name)
        and _within(facts.width, match.min_width, match.max_width)
        and _within(facts.height, match.min_height, match.max_height)
        and _within(facts.pixels, match.min_pixels, match.max_pixels)
        and _within(facts.size_bytes, match.min_bytes, match.max_bytes)
        and match.orientation in ("any", facts.shape)
    )


def matching_rules(rules: Iterable[Rule], facts: Facts) -> list[Rule]:
    """The rules that apply, in config order; a matching rule with ``stop`` ends the list."""
    chosen: list[Rule] = []
    for rule in rules:
        if conditions_hold(rule.match, facts):
            chosen.append(rule)
            if rule.stop:
                break
    return chosen
