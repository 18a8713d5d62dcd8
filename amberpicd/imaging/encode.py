"""Picture → bytes: one output format, its settings, and only the metadata a rule keeps.

Pillow's writers copy comments, ICC profiles, XMP and TIFF tags from a frame's ``info``
and tag directories on their own. So every frame is re-wrapped bare before saving, and
everything written besides pixels is passed explicitly, decided by ``metadata`` alone.
``imaging.frames`` prepares the frames (modes, profile); ``imaging.jpeg`` runs a JPEG
encoder other than Pillow's (mozjpeg, jpegli) when ``encoder`` asks for one.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile, PngImagePlugin
from PIL.ExifTags import IFD, Base

from amberpicd.errors import EncodeError
from amberpicd.imaging import jpeg
from amberpicd.imaging.frames import prepare
from amberpicd.imaging.gifmeta import with_xmp
from amberpicd.imaging.icc import icc_to_keep
from amberpicd.imaging.metadata import exif_to_keep, keep_icc, xmp_to_keep
from amberpicd.imaging.optimize import with_metadata
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import EXTENSIONS, Encode

log = logging.getLogger(__name__)

PILLOW_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "avif": "AVIF",
    "tiff": "TIFF",
    "gif": "GIF",
}
LOSSY = frozenset({"jpeg", "webp", "avif"})
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60}  # avifenc's default is 60 too
DEFAULT_EFFORT = 4  # WebP method 4 (libwebp's default), AVIF speed 6 (Pillow's default)
PNG_DEFAULT_LEVEL = 6  # zlib's own default: see _options
FULL_CHROMA_QUALITY = 90  # from here on JPEG/AVIF keep colour at full resolution (4:4:4)
DEFAULT_DURATION = 100  # ms, for a frame whose duration the decoder did not give

_SOURCE_ALIASES = {"jpg": "jpeg", "mpo": "jpeg", "tif": "tiff", "apng": "png"}


def default_spec(source_format: str) -> Encode:
    """The encode step of a pipeline that names none: the source's format when we can
    write it (HEIF, BMP and anything else become JPEG), default settings."""
    fmt = source_format.lower()
    fmt = _SOURCE_ALIASES.get(fmt, fmt)
    return Encode(format=fmt if fmt in EXTENSIONS else "jpeg")


@dataclass(frozen=True)
class Encoded:
    """An encode's bytes and how they were chosen (for the report and ``--json``)."""

    data: bytes
    format: str
    quality: int | None = None  # the quality used (lossy formats)
    score: float | None = None  # SSIMULACRA2 against the picture, when measured
    note: str | None = None  # e.g. why the source was kept

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def encode(picture: Picture, spec: Encode, groups: Collection[str], path: Path) -> bytes:
    """``picture`` encoded per ``spec`` (one format: ``format: auto`` and ``min_saving``
    are ``imaging.compress``'s), carrying only the metadata ``groups`` keep.

    ``path`` names the source in errors. With ``max_bytes``, lossy formats get the
    highest quality (up to ``spec.quality`` or the default) whose output fits; with
    ``quality: auto``, the lowest reaching the target.
    """
    if spec.format not in EXTENSIONS:
        raise ValueError(f"encode() takes one format, not {spec.format}")
    with encode_errors(path):
        result = encode_as(picture, spec, spec.format, groups, path)
    assert result is not None  # only format: auto skips a candidate
    return result.data


def encode_as(
    picture: Picture, spec: Encode, fmt: str, groups: Collection[str], path: Path
) -> Encoded | None:
    """``picture`` as ``fmt`` per ``spec``; None when ``format: auto`` finds the format
    cannot fit max_bytes (or, for PNG, hopelessly larger than a lossy one). Codec errors
    propagate raw. From ``effort`` 7 on, a still JPEG or PNG gets the lossless rewrite too
    (2 MP: PNG 2-80 % smaller for 0.1-0.4 s; JPEG 0.2 % for 3x the time: not by default)."""
    result = _encode_one(picture, spec, fmt, groups, path)
    effort = spec.effort or 0
    if result is None or fmt not in ("jpeg", "png") or effort < LOSSLESS_PASS_EFFORT:
        return result
    if picture.is_animated:
        return result
    from amberpicd.imaging.optimize import rewrite

    icc = prepare(picture, spec.model_copy(update={"format": fmt}), keep_icc(groups))[1]
    meta = _metadata(fmt, exif_to_keep(picture.exif, groups), icc, xmp_to_keep(picture.xmp, groups))
    smaller = rewrite(result.data, fmt, meta)
    return replace(result, data=smaller) if len(smaller) < len(result.data) else result


LOSSLESS_PASS_EFFORT = 7


def _encode_one(
    picture: Picture, spec: Encode, fmt: str, groups: Collection[str], path: Path
) -> Encoded | None:
    auto, choosing = spec.auto_quality, spec.format == "auto"
    spec = spec.model_copy(update={"format": fmt})
    frames, icc = prepare(picture, spec, keep_icc(groups))
    meta = _metadata(fmt, exif_to_keep(picture.exif, groups), icc, xmp_to_keep(picture.xmp, groups))
    if len(frames) > 1:
        meta.update(_animation(fmt, frames, picture))

    def at(quality: int) -> bytes:
        return _save(frames, fmt, {**_options(spec, quality, auto), **meta})

    if fmt == "png" and choosing:
        # Lossless: worth the full encode only where a quick one is near the others.
        quick = _save(frames, fmt, {"compress_level": 1, **meta})
        if len(quick) > _PNG_HOPELESS * _lossy_guess(frames[0]):
            return None
    top = spec.fixed_quality or DEFAULT_QUALITY.get(fmt, 100)
    limit = None if spec.max_bytes is None else int(spec.max_bytes)
    if auto and fmt in LOSSY and not spec.lossless:
        from amberpicd.imaging.quality import Found, Seen, decoded_frames, reported, search

        ref = Seen(frames, meta.get("duration"))  # an animation's frames too
        probe = _probe(frames, spec, auto) or at
        target, jump = spec.target_score, None if fmt == "webp" else FULL_CHROMA_QUALITY
        found = search(probe, ref, fmt, target, decode=decoded_frames, jump=jump)
        if probe is not at:
            found = replace(found, data=at(found.quality))  # same pixels, the real coding
        if fmt == "webp" and found.score < target:  # 4:2:0 on dithering, noise
            exact = _options(spec.model_copy(update={"lossless": True}), 100)
            data = _save(frames, fmt, {**exact, **meta})
            found = Found(data, 100, ref.score(decoded_frames(data), target), found.probes)
        log.debug("%s: %s quality auto: q%d, score %.2f (target %g), %d probes", path.name, fmt,
                  found.quality, reported(found.score, target), target, found.probes)  # fmt: skip
        if limit is None or len(found.data) <= limit:
            return Encoded(found.data, fmt, found.quality, reported(found.score, target))
        try:
            data, quality = _best_fit(at, found.quality - 1, limit, path)
        except EncodeError:
            if choosing:
                return None
            raise
        score = ref.score(decoded_frames(data), target)  # format: auto compares it
        return Encoded(data, fmt, quality, reported(score, target))
    if limit is None:
        return Encoded(at(top), fmt, top if fmt in LOSSY else None)
    if fmt in LOSSY and not spec.lossless:
        try:
            data, quality = _best_fit(at, top, limit, path)
        except EncodeError:
            if choosing:
                return None
            raise
        return Encoded(data, fmt, quality)
    data = at(top)
    if len(data) > limit:
        if choosing:
            return None
        raise EncodeError(
            path,
            f"lossless {fmt.upper()} output is {_size(len(data))}, "
            f"above max_bytes {_size(limit)} at any quality",
        )
    return Encoded(data, fmt)


_PNG_HOPELESS = 3.0  # a fast PNG this many times a rough lossy size: skip the real one


def _lossy_guess(im: Image.Image) -> int:
    """A quick size of ``im`` as a mid-quality JPEG: the scale PNG is measured against."""
    buf = io.BytesIO()
    _bare(im).convert("RGB").save(buf, "JPEG", quality=75)
    return len(buf.getvalue())


_GIF_XMP = "_gif_xmp"  # not a Pillow option: _save writes it into the GIF itself
_ENCODER = "_jpeg_encoder"  # not a Pillow option: _save runs that JPEG encoder


@contextmanager
def encode_errors(path: Path, doing: str = "") -> Iterator[None]:
    """Any failure inside as the one-line EncodeError for ``path`` (``doing: reason``);
    an EncodeError raised inside is already that, and passes unchanged."""
    try:
        yield
    except EncodeError:
        raise
    except MemoryError:
        raise EncodeError(path, "out of memory (worker_memory limit)") from None
    except Exception as exc:  # codecs raise OSError, ValueError, struct.error, ...
        raise EncodeError(path, f"{doing}: {_reason(exc)}" if doing else _reason(exc)) from None


def _metadata(fmt: str, exif: bytes | None, icc: bytes | None, xmp: bytes | None) -> dict:
    """The keyword arguments that put metadata into the file: these and nothing else."""
    kw: dict[str, Any] = {}
    if fmt == "gif":
        # GIF has no EXIF; its ICC extension is ignored by browsers, so its pixels are
        # converted to sRGB instead (_prepare). XMP is spliced in after Pillow's write.
        if xmp:
            kw[_GIF_XMP] = xmp
        return kw
    icc = icc_to_keep(icc) if icc else None  # its colour tags only (imaging.icc)
    if icc:
        kw["icc_profile"] = icc
    if fmt == "tiff":
        # TIFF has no EXIF block: kept tags become the file's own tags, XMP is tag 700.
        tags = Image.Exif()
        if exif:
            tags.load(exif)
        if xmp:
            tags[Base.XMLPacket] = xmp
        if tags:
            kw["exif"] = tags
        if IFD.Exif in tags or IFD.GPSInfo in tags:
            kw["compression"] = "raw"  # Pillow's libtiff writer cannot write sub-IFDs
        return kw
    if exif:
        # A WebP EXIF chunk is bare TIFF data; Pillow strips the JPEG-style prefix for
        # stills only, so strip it here for animations too.
        kw["exif"] = exif.removeprefix(b"Exif\x00\x00") if fmt == "webp" else exif
    if xmp and fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))  # rebuilt: always UTF-8
        kw["pnginfo"] = info
    elif xmp:
        kw["xmp"] = xmp
    return kw


def _animation(fmt: str, frames: list[Image.Image], picture: Picture) -> dict:
    durations = list(picture.durations[: len(frames)])
    durations += [DEFAULT_DURATION] * (len(frames) - len(durations))
    kw: dict[str, Any] = {"duration": durations}
    if fmt != "avif" and picture.loop is not None:  # Pillow's AVIF writer has no loop count
        kw["loop"] = picture.loop
    if fmt == "gif" and any(f.has_transparency_data for f in frames):
        kw["disposal"] = 2  # frames are whole pictures: clear before drawing the next
    return kw


def _options(spec: Encode, quality: int, searching: bool = False) -> dict:
    """The format's encoder settings at ``quality`` (``searching``: for quality: auto)."""
    effort = DEFAULT_EFFORT if spec.effort is None else spec.effort
    if spec.format == "jpeg":
        return {
            "quality": quality,
            "optimize": True,
            "progressive": spec.progressive,
            "subsampling": "4:4:4" if quality >= FULL_CHROMA_QUALITY else "4:2:0",
            _ENCODER: jpeg.resolve(spec.encoder, searching),
        }
    if spec.format == "webp":
        return {"quality": quality, "lossless": spec.lossless, "method": min(effort, 6)}
    if spec.format == "avif":
        if spec.lossless:
            quality = 100
        full = quality >= FULL_CHROMA_QUALITY
        return {
            "quality": quality,
            "speed": 10 - effort,
            "subsampling": "4:4:4" if full else "4:2:0",
        }
    if spec.format == "png":
        # Default: zlib level 6, balanced. Measured on 8 real photos (5 MP): level 9 took
        # 2.2x the CPU for 1.5 % smaller files; on 4 graphics (11 MP), 7x for 9 % (README).
        if spec.effort is None:
            return {"compress_level": PNG_DEFAULT_LEVEL}
        if spec.effort >= 10:
            return {"optimize": True}  # optimize implies zlib level 9
        return {"compress_level": min(spec.effort, 9)}
    if spec.format == "tiff":
        return {"compression": "tiff_adobe_deflate"}
    return {"optimize": True}  # gif: drop unused palette entries


def _probe(
    frames: list[Image.Image], spec: Encode, searching: bool
) -> Callable[[int], bytes] | None:
    """A cheaper encoder for the search's probes that decodes to exactly the pixels of the
    real encode, or None. libjpeg-turbo's pixels depend on the quantisation tables and
    subsampling, not the entropy coding: a baseline, non-optimised probe without metadata
    is ~5x faster to write and faster to read (tests/test_quality_probe.py). Not for
    WebP's ``method``, AVIF's ``speed`` (they change pixels) nor mozjpeg (trellis)."""
    if spec.format != "jpeg" or len(frames) > 1:
        return None
    if _options(spec, 1, searching)[_ENCODER] != "libjpeg":
        return None

    def probe(quality: int) -> bytes:
        kw = {**_options(spec, quality, searching), "optimize": False, "progressive": False}
        return _save(frames, "jpeg", kw)

    return probe


def _save(frames: list[Image.Image], fmt: str, options: dict) -> bytes:
    first, *rest = (_bare(f) for f in frames)
    options = dict(options)
    gif_xmp = options.pop(_GIF_XMP, None)
    encoder = options.pop(_ENCODER, "libjpeg")
    if encoder != "libjpeg" and not rest:
        data = jpeg.save(first, encoder, options)
        if data is not None:
            meta = {k: options[k] for k in ("icc_profile", "exif", "xmp") if k in options}
            return with_metadata(data, meta)
    if rest:
        options = {**options, "save_all": True, "append_images": rest}
    buf = io.BytesIO()
    try:
        first.save(buf, PILLOW_NAMES[fmt], **options)
    except OSError:
        if fmt != "jpeg" or rest or not (options.get("optimize") or options.get("progressive")):
            raise
        # Pillow gives an optimised or progressive JPEG one output buffer of one byte per
        # pixel (two from q95), which grain at q90+ outgrows ("broken data stream"); its
        # minimum, MAXBLOCK, raised for this save only, makes room for any JPEG.
        buf = io.BytesIO()
        saved = ImageFile.MAXBLOCK
        ImageFile.MAXBLOCK = max(saved, _JPEG_ROOM * first.width * first.height)
        try:
            first.save(buf, "JPEG", **options)
        finally:
            ImageFile.MAXBLOCK = saved
    return with_xmp(buf.getvalue(), gif_xmp) if gif_xmp else buf.getvalue()


_JPEG_ROOM = 8  # bytes per pixel: RGB noise at q100, 4:4:4, takes 4.2


def _bare(im: Image.Image) -> Image.Image:
    """A plain Image sharing ``im``'s pixels, without its metadata: no ``info`` (except a
    transparency key, which is pixel data), no TIFF tag directories, no encoderinfo.

    Uses Pillow's ``_new`` so no pixels are copied; a fresh one is made for every save
    because writers attach settings to the frames they are given.
    """
    im.load()
    out = im._new(im.im)
    out.info = {"transparency": im.info["transparency"]} if "transparency" in im.info else {}
    return out


def _best_fit(at: Callable[[int], bytes], top: int, limit: int, path: Path) -> tuple[bytes, int]:
    """The output at the highest quality in 1..top that fits ``limit``, and that quality,
    by bisection (file size grows with quality): 1 encode when ``top`` fits, else about
    log2(top)."""
    top = max(top, 1)
    data = at(top)
    if len(data) <= limit:
        return data, top
    sizes = {top: len(data)}
    best: tuple[bytes, int] | None = None
    low, high = 1, top - 1
    while low <= high:
        mid = (low + high) // 2
        data = at(mid)
        sizes[mid] = len(data)
        if len(data) <= limit:
            best, low = (data, mid), mid + 1
        else:
            high = mid - 1
    if best is None:
        quality = min(sizes, key=lambda q: (sizes[q], q))
        raise EncodeError(
            path,
            f"no quality fits max_bytes {_size(limit)} "
            f"(smallest: {_size(sizes[quality])} at quality {quality})",
        )
    return best


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f}".removesuffix(".0") + " KB"
    return f"{n / 1_000_000:.1f}".removesuffix(".0") + " MB"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
