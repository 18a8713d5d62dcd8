"""Output path templates: ``~/Pictures/AmberPic/Web/{date:%Y/%m}/{stem}.{ext}`` → a path.

Values that come from the file (its name, its EXIF date, its sub-folder) are sanitised,
and the result is checked to stay inside the template's fixed root folder (the part
before the first field), whatever a name or tag contains.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from amberpicd.errors import CONTROLS, OutputError

NAME_MAX = 255  # bytes per path component on Linux filesystems
CONFLICT_ROOM = len("-9999")  # what the writer may add before the suffix on a name clash
_MAX_SUFFIX = 16  # a longer "extension" is part of the name, not a format
# Separators, and characters that change how a name displays (controls, bidi overrides).
_UNSAFE = re.compile(f"[{CONTROLS}/\\\\]")


@dataclass(frozen=True)
class TemplateValues:
    stem: str
    name: str
    ext: str
    rule: str
    width: int
    height: int
    date: datetime
    hash: str
    relpath: str  # sub-folder of the source below its inbox, "" at the top


def clean_component(text: str, limit: int = NAME_MAX) -> str:
    """One safe path component: no separators, control characters, or dot-only names;
    at most ``limit`` bytes of UTF-8 (cut on a character boundary)."""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE.sub("_", text).strip()
    if set(text) <= {"."}:
        text = text.replace(".", "_") or "_"
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) > limit:
        text = raw[:limit].decode("utf-8", "ignore")
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates → "?"


def fit_name(name: str, limit: int = NAME_MAX - CONFLICT_ROOM) -> str:
    """A cleaned file name of at most ``limit`` bytes, cut in its stem so that the
    extension survives, with room left for the writer's ``-N`` on a name clash."""
    name = clean_component(name, limit=len(name.encode("utf-8", "surrogateescape")))
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = len((dot + ext).encode())
    if not stem or suffix > _MAX_SUFFIX:
        return clean_component(name, limit)
    return clean_component(stem, limit - suffix) + dot + ext


def clean_relpath(relpath: str) -> str:
    """A relative sub-folder path with every component cleaned and no ``..`` or root."""
    parts = [p for p in PurePosixPath(relpath).parts if p not in ("", ".", "..", "/")]
    return "/".join(clean_component(p) for p in parts)


def _split(template: str) -> tuple[str, str]:
    """``template`` as its fixed folders (up to the last ``/`` before the first field)
    and the rest, which is rendered and cleaned."""
    literal = template.split("{", 1)[0]
    cut = literal.rfind("/") + 1
    return template[:cut], template[cut:]


def fixed_root(template: str) -> Path:
    """The folders of ``template`` before its first field: outputs never leave it. Written
    ``./out`` or ``~/./x`` it is the same folder as ``out`` or ``~/x``."""
    return Path(_split(template)[0] or ".")


def render(template: str, values: TemplateValues, path_for_errors: Path) -> Path:
    """The output path for ``values``, always inside ``fixed_root(template)``; raises
    OutputError if the template itself would leave it (a literal ``..``)."""
    head, tail = _split(template)
    root = Path(head or ".")
    parts: list[str] = []
    for literal, field, spec, _ in string.Formatter().parse(tail):
        parts.append(literal)
        if field is None:
            continue
        parts.append(_field(field, spec or "", values))
    rendered = "".join(parts)
    # Each component is cleaned once more: a strftime spec or value may have made "..".
    relative = [p for p in PurePosixPath(rendered).parts if p != "/"]
    if not relative or ".." in relative:
        raise OutputError(path_for_errors, f"output path {head + rendered!r} escapes {root}")
    cleaned = [clean_component(p) for p in relative[:-1]]
    cleaned.append(fit_name(relative[-1]))
    return root.joinpath(*cleaned)


def _field(field: str, spec: str, values: TemplateValues) -> str:
    if field == "date":
        text = values.date.strftime(spec or "%Y-%m-%d")
        # A date spec may make folders ("%Y/%m"); each of its parts is cleaned.
        return "/".join(clean_component(p) for p in text.split("/"))
    if field == "relpath":
        return clean_relpath(values.relpath)
    if field in ("width", "height"):
        return format(getattr(values, field), spec)
    return clean_component(str(getattr(values, field)))
