"""Turn a pydantic validation error into ConfigErrors a user can act on.

Every error pydantic found is reported, in the order of the file: each names the file, the
line of the offending YAML node and its path (``rules[0].pipeline[2]``), in plain words
instead of pydantic's, with a "did you mean" for a near miss of a known name.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from amberpicd.config.yamltree import Document, render, walk
from amberpicd.errors import ConfigError
from amberpicd.ops.registry import STEPS, step_name


class ConfigErrors(ConfigError):
    """Every mistake found in one config. It reads as the first (``message``, ``line``);
    ``errors`` holds them all, in the order of the file."""

    def __init__(self, errors: Sequence[ConfigError]):
        first = errors[0]
        more = len(errors) - 1
        tail = f" (and {more} more: `amberpicd check` lists them)" if more else ""
        super().__init__(first.message + tail, first.source, first.line)
        self.message = first.message
        self.errors = tuple(errors)


def suggest(word: Any, known: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the closest of ``known`` to ``word``, or ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close and close[0] != word else ""


def _then(hint: str) -> str:
    return f"; {hint}" if hint else ""


_EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "byte_size": "expected a size such as 500KB or 2MiB",
    "byte_size_unit": "expected a size such as 500KB or 2MiB (unknown unit)",
}

# How to name one item of a list-valued key in "unknown <noun> 'x'".
_NOUNS = {"formats": "format", "keep_metadata": "metadata group", "names": "name"}


def config_error(exc: ValidationError, doc: Document, source: str | Path | None) -> ConfigErrors:
    """The ConfigErrors for every error of ``exc``, located in ``doc``, sorted by line."""
    details = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in details]
    found: list[ConfigError] = []
    for err in details:
        loc = tuple(err["loc"])
        # A list whose items failed also reports itself too short: the items say it all.
        if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs):
            continue
        located = (err.get("ctx") or {}).get("loc")
        if err["type"] == "config_overlap" and located is not None:  # knows its place (schema)
            at = walk(doc.root, tuple(located))
            found.append(ConfigError(f"{render(at.found)}: {err['msg']}", source, at.line))
            continue
        if not loc and err["type"] == "value_error":
            crossed = _cross_reference(doc)
            if crossed:
                found.extend(ConfigError(m, source, line) for m, line in crossed)
                continue
        where = walk(doc.root, loc)
        path, message = _describe(err, where.found)
        found.append(ConfigError(f"{path}: {message}" if path else message, source, where.line))
    found.sort(key=lambda e: e.line or 0)
    return ConfigErrors(found)


def _describe(err: ErrorDetails, found: tuple[str | int, ...]) -> tuple[str, str]:
    """(path shown before the message, message) for one pydantic error."""
    kind, loc, value = err["type"], err["loc"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return render(found), f"missing required key {loc[-1]!r}"
    if kind == "extra_forbidden":
        parent = found[:-1] if found and found[-1] == loc[-1] else found
        hint = suggest(loc[-1], known_keys(loc[:-1]))
        return render(parent), f"unknown key {loc[-1]!r}" + (f" ({hint})" if hint else "")
    if kind == "unknown_operation":
        return render(found), _unknown_operation(value)
    if kind in ("literal_error", "enum"):  # a Literal's choices, or a StrEnum's
        return _literal(found, value, str(ctx.get("expected", "")))
    if kind in _EXPECTED:
        return render(found), f"{_EXPECTED[kind]}, got {_show(value)}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return render(found), str(ctx["error"])
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        bound = "at least" if kind == "too_short" else "at most"
        return render(found), f"needs {bound} {limit} item{'' if limit == 1 else 's'}"
    if kind == "string_too_short":
        return render(found), "must not be empty"
    if kind == "string_pattern_mismatch":
        return render(found), f"{_show(value)} does not match the pattern {ctx.get('pattern')}"
    # Comparisons (greater_than, less_than_equal, ...) and anything rarer.
    message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return render(found), f"{message}, got {_show(value)}"


def _literal(found: tuple[str | int, ...], value: Any, expected: str) -> tuple[str, str]:
    # "rules[0].pipeline[1].resize: unknown mode 'fitt' (expected fit, fill, exact)"; for an
    # item of a list, name the list's key: "rules[0].match: unknown format 'jpg2' (...)".
    keys = [i for i, elem in enumerate(found) if isinstance(elem, str)]
    if not keys:
        return render(found), f"unknown value {_show(value)} (expected {_choices(expected)})"
    key = str(found[keys[-1]])
    noun = _NOUNS.get(key, key) if keys[-1] < len(found) - 1 else key
    choices = _choices(expected)
    hint = _then(suggest(value, choices.split(", ")))
    message = f"unknown {noun} {_show(value)} (expected {choices}){hint}"
    return render(found[: keys[-1]]), message


def _choices(expected: str) -> str:
    # pydantic writes "'fit', 'fill' or 'exact'"; users read "fit, fill, exact".
    quoted = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    return ", ".join(quoted) if quoted else expected


def _unknown_operation(value: Any) -> str:
    name = step_name(value)
    known = ", ".join(sorted(STEPS))
    if name is None:
        return (
            "a pipeline step is an operation name, or a mapping of one operation name to "
            f"its options (expected one of: {known})"
        )
    hint = _then(suggest(name, STEPS))
    return f"unknown operation {name!r} (expected one of: {known}){hint}"


def _show(value: Any) -> str:
    """A value as it would look in YAML, kept short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _cross_reference(doc: Document) -> list[tuple[str, int]]:
    """Locate the Config-wide checks (unique rule names, watch naming known rules).

    They fail at the root, without a path; point at the exact name instead. Only called
    once every field validated, so the data has the schema's shape.
    """
    data = doc.data
    rules = data.get("rules") or []
    seen: dict[str, int] = {}
    found: list[tuple[str, int]] = []
    for i, rule in enumerate(rules):
        name = rule.get("name")
        if name in seen:
            line = walk(doc.root, ("rules", i, "name")).line
            text = f"rules[{i}].name: duplicate rule name {name!r} (also rules[{seen[name]}])"
            found.append((text, line))
        else:
            seen[name] = i
    for i, entry in enumerate(data.get("watch") or []):
        for j, name in enumerate(entry.get("rules") or []):
            if name not in seen:
                line = walk(doc.root, ("watch", i, "rules", j)).line
                known = ", ".join(seen)
                hint = _then(suggest(name, seen))
                text = f"watch[{i}].rules: unknown rule {name!r} (expected one of: {known}){hint}"
                found.append((text, line))
    return found


def known_keys(loc: Sequence[str | int]) -> tuple[str, ...]:
    """The keys the schema allows in the mapping at ``loc`` (empty if it cannot tell)."""
    from amberpicd.config.schema import Config

    current: Any = Config
    for elem in loc:
        current = _strip(current)
        if isinstance(elem, int):
            if get_origin(current) is not tuple:
                return ()
            current = get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(elem)
            if field is None:
                return ()
            current = field.annotation
        elif elem in STEPS:  # the pipeline's union, tagged by operation name
            current = STEPS[elem]
        else:
            return ()
    current = _strip(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return tuple(current.model_fields)
    return ()


def _strip(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and ``| None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation
