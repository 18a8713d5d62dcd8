"""YAML with line numbers: parse a document, keep its node tree, find the line of a path.

Plain ``yaml.safe_load`` forgets where things were written and silently keeps the last of
two equal keys; the config loader needs both the line of every value (to point errors at
the user's text) and duplicate keys reported as mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from amberpicd.errors import ConfigError

Loc = Sequence[str | int]

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Document:
    """A parsed YAML document: its node tree and the plain data built from it."""

    root: Node
    data: Any


def parse(text: str, source: str | Path | None) -> Document:
    """Parse one YAML document with the safe loader; any problem is a ConfigError."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError("empty config", source)
        _check_duplicates(root, [], source, set())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {_problem(exc, mark, text)}"
        raise ConfigError(message, source, _line(mark)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source) from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError("empty config", source)
    return Document(root, data)


def _problem(exc: yaml.MarkedYAMLError, mark: Mark | None, text: str) -> str:
    problem = exc.problem or exc.context or "cannot be parsed"
    if exc.problem and exc.context:
        if problem.startswith("but "):
            problem = f"{exc.context}, {problem}"  # the composer splits one sentence in two
        elif exc.context_mark is not None and exc.context_mark is not mark:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
    if mark is not None and _FLOW_THEN_TEXT.search(_text_line(text, mark.line)):
        problem += '; quote a value that starts with { or [, e.g. "{stem}.{ext}"'
    return problem


# ``output: {stem}.{ext}``: YAML reads "{stem}" as a mapping, then chokes on ".{ext}".
_FLOW_THEN_TEXT = re.compile(r"(:|-)\s+[{\[][^#]*[}\]][^\s#,}\]]")


def _text_line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def _line(mark: Mark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


def _check_duplicates(node: Node, path: list[str | int], source: Any, seen: set[int]) -> None:
    # Aliases make the tree a graph (even a cyclic one); visit each node once.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        keys: set[tuple[str, str]] = set()
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag != MERGE_TAG:
                if (key.tag, key.value) in keys:
                    where = f"{render(path)}: " if path else ""
                    raise ConfigError(
                        f"{where}duplicate key {key.value!r}", source, _line(key.start_mark)
                    )
                keys.add((key.tag, key.value))
                _check_duplicates(value, [*path, key.value], source, seen)
            else:
                _check_duplicates(value, path, source, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, [*path, i], source, seen)


@dataclass(frozen=True)
class Walk:
    """How far a path led into the node tree.

    ``found`` is the part of the path that exists in the document, ``line`` the line of
    its last element (for a mapping entry, the line of the key), ``node`` its value.
    """

    found: tuple[str | int, ...]
    line: int
    node: Node


def walk(root: Node, loc: Loc) -> Walk:
    """Follow ``loc`` (mapping keys and sequence indexes) as far as the document goes."""
    node = root
    line = root.start_mark.line + 1
    found: list[str | int] = []
    for elem in loc:
        step = _child(node, elem)
        if step is None:
            break
        line, node = step
        found.append(elem)
    return Walk(tuple(found), line, node)


def _child(node: Node, elem: str | int) -> tuple[int, Node] | None:
    if isinstance(node, MappingNode) and isinstance(elem, str):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == elem:
                return key.start_mark.line + 1, value
    elif isinstance(node, SequenceNode) and isinstance(elem, int) and 0 <= elem < len(node.value):
        item = node.value[elem]
        return item.start_mark.line + 1, item
    elif isinstance(node, ScalarNode) and elem == node.value:
        # A union tag naming the scalar itself (``- auto_orient`` is tagged auto_orient).
        return node.start_mark.line + 1, node
    return None


def render(loc: Loc) -> str:
    """A path as a user reads it: ``rules[0].pipeline[2]``."""
    out = ""
    for elem in loc:
        if isinstance(elem, int):
            out += f"[{elem}]"
        else:
            out += f".{elem}" if out else str(elem)
    return out
