"""A journal row as the rest of the daemon reads it: the job states, ``Job`` (one row of
``jobs``, its JSON columns decoded) and ``StagedOutput`` (one row of ``staged``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from amberpicd.fs.identity import FileIdentity
from amberpicd.journal.store import _path

# States that decide whether a key is due again. An undone file (or one being undone: its
# original is put back before the undo ends) is not taken again unless it changes or is retried.
DECISIONS = ("done", "failed", "unmatched", "original_failed", "undoing", "undone")
UNFINISHED = ("running", "staged", "published")
_MAX_LIMIT = 2**63 - 1  # SQLite's largest integer
_IN_DECISIONS = "state IN ({})".format(", ".join(f"'{s}'" for s in DECISIONS))
_IN_UNFINISHED = "state IN ({})".format(", ".join(f"'{s}'" for s in UNFINISHED))
_COLS = (
    "id, source, inbox, content_hash, fingerprint, state, rules, outputs, error,"
    " size, mtime_ns, created, started, finished, dev, ino, ctime_ns, originals, duplicate_of,"
    " original, undo"
)


@dataclass(frozen=True)
class Job:
    id: int
    source: Path
    inbox: Path | None
    content_hash: str
    fingerprint: str
    state: str
    rules: tuple[str, ...]
    outputs: tuple[Path, ...]
    error: str | None
    size: int
    mtime_ns: int
    created: float
    started: float | None
    finished: float | None
    dev: int = 0
    ino: int = 0
    ctime_ns: int = 0
    originals: str = "keep"  # the originals policy the job applied
    duplicate_of: int | None = None  # duplicates: skip; the job whose outputs this content has
    # Where the original went ({"fate": "kept" | "moved" | "trashed" | "deleted", ...}; None:
    # not recorded, e.g. a job from before undo existed), and the undo's record, if any.
    original: dict | None = None
    undo: dict | None = None
    # The sha256 of each output's bytes as written, in the order of outputs ("" not known).
    output_hashes: tuple[str, ...] = ()
    # Per output, what its encoder chose ({"format", "quality", "score", "note"}; {} when
    # not recorded): kept in the outputs' JSON entries, ``{"path": ..., "score": ...}``.
    chosen: tuple[dict, ...] = ()

    @property
    def identity(self) -> FileIdentity:
        """The identity of the file whose content the job processed (what recovery checks
        before handling the original)."""
        return FileIdentity(
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns, self.content_hash
        )


@dataclass(frozen=True)
class StagedOutput:
    temp: Path
    final: Path
    on_conflict: str
    published: Path | None = None  # set by mark_published: where this output went (or is going)
    sha256: str = ""  # of the bytes staged (undo removes an output only while it holds them)


def _job(row: tuple) -> Job:
    id_, source, inbox, content_hash, fingerprint, state, rules, outputs, *rest = row
    *rest, original, undo = rest
    inbox = _path(inbox) if inbox is not None else None
    # An entry is {"path", "sha256"} and what the encoder chose ("format", "quality",
    # "score", "note"), or a bare path in journals written before undo.
    entries = [e if isinstance(e, dict) else {"path": e} for e in json.loads(outputs)]
    paths = tuple(Path(e["path"]) for e in entries)
    hashes = tuple(e.get("sha256") or "" for e in entries)
    chosen = tuple({k: v for k, v in e.items() if k not in ("path", "sha256")} for e in entries)
    return Job(
        id_,
        _path(source),
        inbox,
        content_hash,
        fingerprint,
        state,
        tuple(json.loads(rules)),
        paths,
        *rest,
        original=json.loads(original) if original else None,
        undo=json.loads(undo) if undo else None,
        output_hashes=hashes,
        chosen=chosen,
    )
