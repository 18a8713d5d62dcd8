"""Lossless rewrites of JPEG and PNG files: same pixels, fewer bytes, only kept metadata.

JPEG: mozjpeg's lossless optimisation (Huffman tables, progressive scans) keeps the DCT
coefficients; PNG: oxipng recompresses and may pick a smaller colour type, both verified
lossless by construction. Every metadata segment or chunk of the source is dropped and
the kept ones come from a tiny file Pillow writes with the same metadata arguments as
an encode, so one code path (``imaging.encode._metadata``) decides what is written.
The result is never larger than the source with its metadata stripped.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

OPTIMIZABLE = frozenset({"jpeg", "png"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary PNG chunks that are pixels or how to show them, not metadata: kept.
_PNG_RENDERING = frozenset({b"tRNS", b"sRGB", b"gAMA", b"cHRM", b"sBIT", b"pHYs", b"cICP"})
_PNG_METADATA_OUT = (b"iCCP", b"eXIf", b"iTXt", b"tEXt", b"zTXt")


def rewrite(data: bytes, fmt: str, meta: dict) -> bytes:
    """``data`` (a JPEG or PNG) rewritten losslessly, carrying the metadata that Pillow
    would write for the keyword arguments ``meta`` and nothing else."""
    # The codecs load on first use, so rules that never optimise never import them.
    if fmt == "jpeg":
        import mozjpeg_lossless_optimization

        segments = _jpeg_segments(_tiny(fmt, meta))
        stripped = _jpeg_without_metadata(data)
        optimised = _jpeg_without_metadata(mozjpeg_lossless_optimization.optimize(data))
        best = min(optimised, stripped, key=len)
        at = _after_jfif(best)
        return best[:at] + segments + best[at:]
    if fmt == "png":
        import oxipng

        chunks = _png_chunks(_tiny(fmt, meta), _PNG_METADATA_OUT)
        stripped = _png_without_metadata(data)
        keep = sorted(_PNG_RENDERING)  # a list of bytes (pyoxipng deprecates sets)
        optimised = oxipng.optimize_from_memory(data, strip=oxipng.StripChunks.keep(keep))
        best = min(_png_without_metadata(optimised), stripped, key=len)
        if chunks and b"iCCP" in chunks:
            best = _png_drop(best, {b"sRGB"})  # a profile and sRGB must not both be there
        return best[:33] + chunks + best[33:]  # after the signature and IHDR
    raise ValueError(f"{fmt} has no lossless rewrite")


def _tiny(fmt: str, meta: dict) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "JPEG" if fmt == "jpeg" else "PNG", **meta)
    return buf.getvalue()


def _jpeg_markers(data: bytes):
    """(start, end, marker) of each segment before the first scan; then the rest."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        yield pos, pos + 2 + length, marker
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        pos += 2 + length
    raise ValueError("JPEG without a scan")


def _is_jpeg_metadata(marker: int) -> bool:
    return 0xE1 <= marker <= 0xEF or marker == 0xFE  # APP1-APP15 and comments


def _jpeg_without_metadata(data: bytes) -> bytes:
    out = [data[:2]]
    for start, end, marker in _jpeg_markers(data):
        if marker == 0xDA:
            out.append(data[start:])
        elif not _is_jpeg_metadata(marker):
            out.append(data[start:end])
    return b"".join(out)


def _after_jfif(data: bytes) -> int:
    """Where kept segments go: after a leading JFIF APP0 (it must come first), else
    right after SOI."""
    for _, end, marker in _jpeg_markers(data):
        return end if marker == 0xE0 else 2
    return 2


def _jpeg_segments(data: bytes) -> bytes:
    return b"".join(
        data[s:e] for s, e, m in _jpeg_markers(data) if m != 0xDA and _is_jpeg_metadata(m)
    )


def _png_iter(data: bytes):
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG")
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        yield pos, end, kind
        if kind == b"IEND":
            return
        pos = end


def _png_chunks(data: bytes, kinds: tuple[bytes, ...]) -> bytes:
    return b"".join(data[s:e] for s, e, k in _png_iter(data) if k in kinds)


def _png_drop(data: bytes, kinds: set[bytes]) -> bytes:
    return data[:8] + b"".join(data[s:e] for s, e, k in _png_iter(data) if k not in kinds)


def _png_without_metadata(data: bytes) -> bytes:
    """Critical chunks (upper-case first letter), APNG's, and the rendering ones."""
    keep = []
    for s, e, k in _png_iter(data):
        if k[:1].isupper() or k in _PNG_RENDERING or k in (b"acTL", b"fcTL", b"fdAT"):
            keep.append(data[s:e])
    return data[:8] + b"".join(keep)
