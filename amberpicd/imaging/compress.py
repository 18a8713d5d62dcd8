"""The output step's choices around one encode: ``format: auto`` (the smallest of the
candidate formats at the same target), ``min_saving`` (the source, losslessly optimised,
when re-encoding saves too little) and ``optimize`` (only that lossless rewrite).

Builds on ``imaging.encode`` (one format) and ``imaging.optimize`` (lossless rewrites);
the metadata written is always what ``imaging.encode`` would write for the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from amberpicd.errors import EncodeError
from amberpicd.imaging.encode import (
    _SOURCE_ALIASES,
    Encoded,
    _metadata,
    _size,
    encode_as,
    encode_errors,
)
from amberpicd.imaging.metadata import exif_to_keep, keep_icc, xmp_to_keep
from amberpicd.imaging.optimize import OPTIMIZABLE, rewrite
from amberpicd.imaging.picture import Picture
from amberpicd.ops._common import open_profile
from amberpicd.ops.encode import Encode
from amberpicd.ops.optimize import Optimize
from amberpicd.ops.to_srgb import is_srgb

log = logging.getLogger(__name__)


def encode_output(
    picture: Picture,
    spec: Encode,
    groups: Collection[str],
    path: Path,
    source: bytes | None = None,
) -> Encoded:
    """Like ``encode``, with what was chosen: for ``format: auto`` the smallest of the
    candidates (all at the same target), for ``quality: auto`` the quality and score.
    ``source`` (the dropped file, given when the rule leaves its pixels alone) lets
    ``min_saving`` keep it, losslessly optimised, when re-encoding saves too little."""
    if isinstance(spec, Optimize):
        return lossless_source(picture, source, groups, path, "optimize")
    with encode_errors(path):
        tried = [encode_as(picture, spec, f, groups, path) for f in _candidates(spec, picture)]
        results = [r for r in tried if r is not None]
        if not results:
            raise EncodeError(path, f"no format of {', '.join(spec.candidates)} fits max_bytes")
        best = _smallest(results, spec.target_score if spec.auto_quality else None)
    if spec.format == "auto":
        sizes = ", ".join(f"{r.format} {_size(len(r.data))}" for r in results)
        log.debug("%s: format auto: %s; kept %s", path.name, sizes, best.format)
    if spec.min_saving is not None and source is not None:
        best = _min_saving(best, picture, source, spec, groups, path)
    return best


def lossless_source(
    picture: Picture, source: bytes | None, groups: Collection[str], path: Path, why: str
) -> Encoded:
    """The dropped file itself, rewritten losslessly with the metadata ``groups`` keep."""
    fmt = _SOURCE_ALIASES.get(picture.source_format.lower(), picture.source_format.lower())
    if source is None:
        raise EncodeError(path, f"{why}: the rule changes pixels, so there is no source to keep")
    if fmt not in OPTIMIZABLE or picture.is_animated:
        raise EncodeError(path, f"{why}: only still JPEG and PNG sources can be rewritten")
    if not keep_icc(groups) and _profile_matters(picture.icc):
        # The pixels stay as stored, so without their profile they would be read as sRGB
        # and look different: the lossless path is not taken.
        raise EncodeError(
            path,
            f"{why}: the source's colour profile is not sRGB and keep_metadata does not "
            "keep icc, so its pixels cannot be kept as they are",
        )
    icc = picture.icc if keep_icc(groups) else None
    meta = _metadata(fmt, exif_to_keep(picture.exif, groups), icc, xmp_to_keep(picture.xmp, groups))
    with encode_errors(path, why):
        data = rewrite(source, fmt, meta)
    saved = 1 - len(data) / max(len(source), 1)
    return Encoded(data, fmt, note=f"{why}: source rewritten losslessly, {saved:.0%} smaller")


def _profile_matters(icc: bytes | None) -> bool:
    """Whether dropping ``icc`` changes how the pixels look: a profile LittleCMS can use
    (viewers use it too) that does not map colours to sRGB unchanged."""
    profile = open_profile(icc)
    return profile is not None and not is_srgb(profile)


def _min_saving(
    best: Encoded,
    picture: Picture,
    source: bytes,
    spec: Encode,
    groups: Collection[str],
    path: Path,
) -> Encoded:
    """``best`` if it is at least ``min_saving`` smaller than the source; else the source
    rewritten losslessly (when it can be: a still JPEG or PNG, within max_bytes)."""
    fraction = spec.min_saving or 0.0
    if len(best.data) <= len(source) * (1 - fraction):
        return best
    try:
        kept = lossless_source(picture, source, groups, path, "min_saving")
    except EncodeError as exc:
        log.debug("%s: %s; kept the encode", path.name, exc)
        return best
    if spec.max_bytes is not None and len(kept.data) > spec.max_bytes:
        log.debug("%s: min_saving: the source is above max_bytes; kept the encode", path.name)
        return best
    saving = 1 - len(best.data) / len(source)
    log.info(
        "%s: re-encoding saved %.0f%% (min_saving %.0f%%): kept the source, optimised",
        path.name, saving * 100, fraction * 100,
    )  # fmt: skip
    return kept


def _smallest(results: list[Encoded], target: float | None) -> Encoded:
    """The smallest of the candidates that reach ``target`` (lossless ones always do); if
    none does (max_bytes, or a picture no quality reaches), the best-scoring one: a
    smaller file that misses the target is not the same look for fewer bytes."""
    met = [r for r in results if target is None or r.score is None or r.score >= target]
    if met:
        return min(met, key=lambda r: len(r.data))
    return max(results, key=lambda r: (r.score or 0.0, -len(r.data)))


def _candidates(spec: Encode, picture: Picture) -> tuple[str, ...]:
    formats = spec.candidates
    if spec.format == "auto" and picture.image.has_transparency_data:
        # JPEG would flatten the transparency: a candidate only when nothing else is.
        formats = tuple(f for f in formats if f != "jpeg") or formats
    return formats
