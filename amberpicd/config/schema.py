"""The configuration's schema: what a user may write in config.yaml, and its defaults.

Every model forbids unknown keys, so a typo is an error at load time, never skipped.
"""

from __future__ import annotations

import os
import string
from enum import StrEnum
from fnmatch import fnmatch
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from amberpicd.ops.base import Operation, Step
from amberpicd.ops.encode import Encode
from amberpicd.ops.registry import pipeline_item_type
from amberpicd.output.template import fixed_root

INPUT_FORMATS = ("jpeg", "png", "heif", "webp", "avif", "tiff", "gif", "bmp")
METADATA_GROUPS = ("icc", "copyright", "datetime", "camera", "gps", "exif", "xmp")
TEMPLATE_FIELDS = ("stem", "name", "ext", "rule", "width", "height", "date", "hash", "relpath")


class OnConflict(StrEnum):
    """What publishing does when an output's name is taken (``on_conflict``)."""

    RENAME = "rename"  # the next free name: name-1.webp, name-2.webp...
    OVERWRITE = "overwrite"
    SKIP = "skip"


class Originals(StrEnum):
    """What happens to an original once its outputs are durably written (``originals``)."""

    KEEP = "keep"
    MOVE = "move"  # into the watch entry's archive
    TRASH = "trash"
    DELETE = "delete"


def _expand(path: Path) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(path))))


UserPath = Annotated[Path, AfterValidator(_expand)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(Strict):
    """Safety limits, global or per inbox. Refusals name the limit and the value."""

    max_pixels: int = Field(default=100_000_000, gt=0)  # per frame, as declared by the header
    max_file_bytes: ByteSize = Field(default=ByteSize(512 * 1024**2), gt=0)
    max_frames: int = Field(default=1000, gt=0)
    job_timeout: float = Field(default=60.0, gt=0)  # seconds per file, worker included
    worker_memory: ByteSize = Field(default=ByteSize(4 * 1024**3), gt=0)  # RLIMIT_AS per worker
    formats: tuple[Literal[INPUT_FORMATS], ...] = INPUT_FORMATS  # decoder allowlist

    def merged(self, override: LimitsOverride | None) -> Limits:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True))


class LimitsOverride(Strict):
    """Per-inbox limits: any key left out comes from the global ``limits``."""

    max_pixels: int | None = Field(default=None, gt=0)
    max_file_bytes: ByteSize | None = Field(default=None, gt=0)
    max_frames: int | None = Field(default=None, gt=0)
    job_timeout: float | None = Field(default=None, gt=0)
    worker_memory: ByteSize | None = Field(default=None, gt=0)
    formats: tuple[Literal[INPUT_FORMATS], ...] | None = None


class Match(Strict):
    """Conditions a file must meet for a rule to apply; every one given must hold."""

    formats: tuple[Literal[INPUT_FORMATS], ...] | None = None  # sniffed from content
    names: tuple[str, ...] | None = None  # case-insensitive globs on the file name
    min_width: int | None = Field(default=None, ge=0)
    max_width: int | None = Field(default=None, ge=0)
    min_height: int | None = Field(default=None, ge=0)
    max_height: int | None = Field(default=None, ge=0)
    min_pixels: int | None = Field(default=None, ge=0)
    max_pixels: int | None = Field(default=None, ge=0)
    min_bytes: ByteSize | None = Field(default=None, ge=0)
    max_bytes: ByteSize | None = Field(default=None, ge=0)
    orientation: Literal["landscape", "portrait", "square", "any"] = "any"

    @field_validator("formats", mode="before")
    @classmethod
    def _format_aliases(cls, value: object) -> object:
        aliases = {"jpg": "jpeg", "heic": "heif", "tif": "tiff"}
        if isinstance(value, list | tuple):
            return [aliases.get(v.lower(), v.lower()) if isinstance(v, str) else v for v in value]
        return value

    def name_matches(self, name: str) -> bool:
        return self.names is None or any(fnmatch(name.lower(), g.lower()) for g in self.names)


def _check_template(template: str) -> str:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad output template {template!r}: {exc}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unknown template field {{{field_name}}} (expected {', '.join(TEMPLATE_FIELDS)})"
            )
        if conversion:
            raise ValueError(f"template field {{{field_name}}} takes no !conversion")
        if spec and field_name not in ("date", "width", "height"):
            raise ValueError(f"template field {{{field_name}}} takes no format spec")
    if "{" in Path(template).anchor:
        raise ValueError("the output template must start with a fixed folder")
    return template


Template = Annotated[str, AfterValidator(_check_template)]
PipelineItem = pipeline_item_type()


class Rule(Strict):
    """One named recipe: which files it takes, what it does to them, where results go."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    match: Match = Match()
    pipeline: tuple[PipelineItem, ...] = Field(min_length=1)
    keep_metadata: tuple[Literal[METADATA_GROUPS], ...] = ("icc",)
    output: Template
    on_conflict: OnConflict = OnConflict.RENAME
    stop: bool = False

    @field_validator("pipeline")
    @classmethod
    def _encode_last(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        for i, step in enumerate(steps):
            if isinstance(step, Encode) and i != len(steps) - 1:
                raise ValueError("encode must be the last step of a pipeline")
        return steps

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(s for s in self.pipeline if isinstance(s, Operation))

    @property
    def encode(self) -> Encode | None:
        """The rule's encode step; None means: the source's format, default settings."""
        last = self.pipeline[-1]
        return last if isinstance(last, Encode) else None


class Watch(Strict):
    """An inbox folder the daemon watches, and what happens to files dropped there."""

    inbox: UserPath
    recursive: bool = False
    rules: tuple[str, ...] | None = None  # None: every rule
    originals: Originals = Originals.KEEP
    archive: UserPath | None = None
    # A file is its path and its content: "process" makes outputs for every file dropped;
    # "skip" skips a file whose content these rules already made outputs of from another
    # path ("duplicate of ..."), and still applies the originals policy to it.
    duplicates: Literal["process", "skip"] = "process"
    enabled: bool = True
    limits: LimitsOverride | None = None

    @model_validator(mode="after")
    def _archive_when_moving(self) -> Watch:
        if self.originals is Originals.MOVE and self.archive is None:
            raise ValueError("originals: move needs an archive folder")
        return self


class Daemon(Strict):
    """How ``amberpicd run`` behaves."""

    workers: int | None = Field(default=None, ge=1)  # None: one per core
    settle_seconds: float = Field(default=2.0, gt=0, le=3600)  # quiet period, see README
    shutdown_grace: float = Field(default=5.0, ge=0, le=600)  # seconds for in-flight jobs
    notify: Literal["errors", "all", "off"] = "errors"
    tray: bool = True


class Config(Strict):
    """The whole config.yaml."""

    version: Literal[1] = 1
    daemon: Daemon = Daemon()
    limits: Limits = Limits()
    watch: tuple[Watch, ...] = ()
    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> Config:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        for w in self.watch:
            unknown = [n for n in (w.rules or ()) if n not in names]
            if unknown:
                raise ValueError(f"watch {w.inbox}: unknown rule {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _no_overlaps(self) -> Config:
        """Folders that would feed the daemon its own work, or one folder watched twice.

        An inbox may not be another entry's inbox. An output root (a template's fixed
        folder) or an archive may not be an inbox, nor lie inside a recursive one: what the
        daemon writes there would arrive as new files. (Inside a non-recursive inbox's
        sub-folder is fine: sub-folders are not watched. Nested inboxes are fine: the deepest
        owns its files.) Paths compare after resolving ``..`` and symlinks that exist.
        The error carries its place (``loc``) for config/messages.py to show the line.
        """
        inboxes = [(i, w, _real(w.inbox)) for i, w in enumerate(self.watch)]
        for j, _, inbox in inboxes:
            for i, _, other in inboxes[:j]:
                if inbox == other:
                    _overlap(("watch", j, "inbox"), f"same folder as watch[{i}].inbox")

        def check(loc: tuple[str | int, ...], folder: Path, what: str, follows: str) -> None:
            real = _real(folder)
            for i, w, inbox in inboxes:
                if real == inbox:
                    _overlap(loc, f"{what} is the inbox of watch[{i}]; {follows}")
                if w.recursive and real.is_relative_to(inbox):
                    where = f"the recursive inbox {w.inbox} of watch[{i}]"
                    _overlap(loc, f"{what} is inside {where}; {follows}")

        for k, rule in enumerate(self.rules):
            root = fixed_root(rule.output)
            check(
                ("rules", k, "output"),
                root,
                f"output folder {root} (rule {rule.name})",
                "outputs would be taken as new files",
            )
        for j, w in enumerate(self.watch):
            if w.archive is not None and w.originals is Originals.MOVE:
                check(
                    ("watch", j, "archive"),
                    w.archive,
                    f"archive {w.archive}",
                    "moved originals would be taken as new files",
                )
        return self

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)

    def folders(self) -> tuple[Path, ...]:
        """Every folder the config names: inboxes, archives, and each output template's
        fixed folder. Nothing is written, moved or deleted outside them."""
        named = [w.inbox for w in self.watch] + [w.archive for w in self.watch if w.archive]
        named += [fixed_root(r.output) for r in self.rules]
        return tuple(dict.fromkeys(named))

    def watch_for(self, path: Path) -> Watch | None:
        """The watch entry whose inbox contains ``path`` (the deepest inbox wins)."""
        best: Watch | None = None
        for w in self.watch:
            deeper = best is None or len(w.inbox.parts) > len(best.inbox.parts)
            if path.is_relative_to(w.inbox) and deeper:
                best = w
        return best

    def rules_for(self, watch: Watch | None) -> tuple[Rule, ...]:
        if watch is None or watch.rules is None:
            return self.rules
        return tuple(self.rule(n) for n in watch.rules)

    def limits_for(self, watch: Watch | None) -> Limits:
        return self.limits.merged(watch.limits if watch else None)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(_expand(path)))  # templates keep their ~ until rendered


def _overlap(loc: tuple[str | int, ...], message: str) -> None:
    raise PydanticCustomError("config_overlap", "{message}", {"message": message, "loc": loc})
