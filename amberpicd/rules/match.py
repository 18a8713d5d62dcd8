"""Decide which rules of a config apply to one file's Facts, and say why.

``evaluate`` is the one decision: the engine's ``matching_rules`` and ``amberpicd explain``
are two readings of its answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amberpicd.config.schema import Match, Rule
from amberpicd.rules.conditions import Verdict, verdicts
from amberpicd.rules.facts import Facts


@dataclass(frozen=True)
class RuleDecision:
    """One rule, decided for one file. ``stopped_by`` names the earlier rule whose
    ``stop: true`` ended the list before this rule was looked at (its verdicts are empty)."""

    rule: Rule
    applies: bool
    verdicts: tuple[Verdict, ...] = ()
    stopped_by: str | None = None


def conditions_hold(match: Match, facts: Facts) -> bool:
    """True when every condition that ``match`` sets holds for ``facts``."""
    return all(v.holds for v in verdicts(match, facts))


def evaluate(rules: Iterable[Rule], facts: Facts) -> list[RuleDecision]:
    """Every rule, in config order, with whether it applies and each condition's verdict;
    a matching rule with ``stop`` marks every later rule as stopped by it."""
    decisions: list[RuleDecision] = []
    stopper: str | None = None
    for rule in rules:
        if stopper is not None:
            decisions.append(RuleDecision(rule, False, stopped_by=stopper))
            continue
        found = tuple(verdicts(rule.match, facts))
        applies = all(v.holds for v in found)
        decisions.append(RuleDecision(rule, applies, found))
        if applies and rule.stop:
            stopper = rule.name
    return decisions


def matching_rules(rules: Iterable[Rule], facts: Facts) -> list[Rule]:
    """The rules that apply, in config order; a matching rule with ``stop`` ends the list."""
    return [d.rule for d in evaluate(rules, facts) if d.applies]
