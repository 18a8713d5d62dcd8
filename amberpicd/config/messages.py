"""Turn a pydantic validation error into a ConfigError a user can act on.

Only the first error is reported: it names the file, the line of the offending YAML node
and its path (``rules[0].pipeline[2]``), in plain words instead of pydantic's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from amberpicd.config.yamltree import Document, render, walk
from amberpicd.errors import ConfigError
from amberpicd.ops.registry import STEPS, step_name

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


def config_error(exc: ValidationError, doc: Document, source: str | Path | None) -> ConfigError:
    """The ConfigError for the first error of ``exc``, located in ``doc``."""
    err = exc.errors(include_url=False)[0]
    located = (err.get("ctx") or {}).get("loc")
    if err["type"] == "config_overlap" and located is not None:  # knows its place (schema)
        where = walk(doc.root, tuple(located))
        return ConfigError(f"{render(where.found)}: {err['msg']}", source, where.line)
    if not err["loc"] and err["type"] == "value_error":
        found = _cross_reference(doc)
        if found is not None:
            return ConfigError(found[0], source, found[1])
    where = walk(doc.root, err["loc"])
    path, message = _describe(err, where.found)
    return ConfigError(f"{path}: {message}" if path else message, source, where.line)


def _describe(err: ErrorDetails, found: tuple[str | int, ...]) -> tuple[str, str]:
    """(path shown before the message, message) for one pydantic error."""
    kind, loc, value = err["type"], err["loc"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return render(found), f"missing required key {loc[-1]!r}"
    if kind == "extra_forbidden":
        parent = found[:-1] if found and found[-1] == loc[-1] else found
        return render(parent), f"unknown key {loc[-1]!r}"
    if kind == "unknown_operation":
        return render(found), _unknown_operation(value)
    if kind == "literal_error":
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
    message = f"unknown {noun} {_show(value)} (expected {_choices(expected)})"
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
    return f"unknown operation {name!r} (expected one of: {known})"


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


def _cross_reference(doc: Document) -> tuple[str, int] | None:
    """Locate the Config-wide checks (unique rule names, watch naming known rules).

    They fail at the root, without a path; point at the exact name instead. Only called
    once every field validated, so the data has the schema's shape.
    """
    data = doc.data
    rules = data.get("rules") or []
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        name = rule.get("name")
        if name in seen:
            line = walk(doc.root, ("rules", i, "name")).line
            return f"rules[{i}].name: duplicate rule name {name!r} (also rules[{seen[name]}])", line
        seen[name] = i
    for i, entry in enumerate(data.get("watch") or []):
        for j, name in enumerate(entry.get("rules") or []):
            if name not in seen:
                line = walk(doc.root, ("watch", i, "rules", j)).line
                known = ", ".join(seen)
                return f"watch[{i}].rules: unknown rule {name!r} (expected one of: {known})", line
    return None
