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
import re
import struct

from PIL import Image

OPTIMIZABLE = frozenset({"jpeg", "png"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary PNG chunks that are pixels or how to show them, not metadata: kept, when
# their payload has the size the PNG spec gives (a longer one carries something else).
_PNG_SIZES = {
    b"tRNS": range(1, 257),  # 2 (gray), 6 (RGB) or one byte per palette entry
    b"sRGB": (1,),
    b"gAMA": (4,),
    b"cHRM": (32,),
    b"sBIT": (1, 2, 3, 4),
    b"pHYs": (9,),
    b"cICP": (4,),
}
_PNG_RENDERING = frozenset(_PNG_SIZES)
_PNG_PICTURE = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT"})
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


def with_metadata(data: bytes, meta: dict) -> bytes:
    """A JPEG another encoder wrote (mozjpeg, jpegli), its own metadata segments dropped
    and those Pillow would write for ``meta`` put in: the same segments as a Pillow
    encode with the same arguments."""
    bare = _jpeg_without_metadata(data)
    at = _after_jfif(bare)
    return bare[:at] + _jpeg_segments(_tiny("jpeg", meta)) + bare[at:]


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


# Segments that are the picture: frame headers (SOFn), Huffman and arithmetic tables,
# quantisation tables, restart interval, scans, line count. Anything else is dropped.
_JPEG_PICTURE = frozenset(range(0xC0, 0xD0)) | {0xDA, 0xDB, 0xDC, 0xDD}
# The end of a scan's entropy-coded data: 0xFF then anything but a stuffed zero, a
# restart marker (RST0-7, part of the scan) or a fill byte.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_without_metadata(data: bytes) -> bytes:
    """The picture's segments only, by allowlist, from SOI to the first EOI: markers
    between or after scans and any trailer (an MPF preview, a vendor's blob) go too.
    A JFIF header is kept without its thumbnail and Adobe's APP14 as its four fields
    (how to read the components: an inverted CMYK picture needs it)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out, pos = [b"\xff\xd8"], 2
    while True:
        while data[pos : pos + 1] == b"\xff" and data[pos + 1 : pos + 2] == b"\xff":
            pos += 1  # fill bytes before a marker
        if pos + 2 > len(data) or data[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI: the picture ends here, whatever follows
            out.append(b"\xff\xd9")
            return b"".join(out)
        if pos + 4 > len(data):
            raise ValueError("JPEG is truncated")
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        payload = data[pos + 4 : end]
        if marker in _JPEG_PICTURE:
            out.append(data[pos:end])
        elif marker == 0xE0 and payload[:5] == b"JFIF\x00" and len(payload) >= 12:
            out.append(_segment(0xE0, payload[:12] + b"\x00\x00"))  # thumbnail 0x0
        elif marker == 0xEE and payload[:5] == b"Adobe" and len(payload) >= 12:
            out.append(_segment(0xEE, payload[:12]))
        pos = end
        if marker == 0xDA:
            found = _SCAN_END.search(data, pos)
            if found is None:
                raise ValueError("JPEG scan without an end")
            out.append(data[pos : found.start()])
            pos = found.start()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


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
    """The picture's chunks by allowlist: the four standard critical ones, APNG's, and
    the rendering ones (an unknown "critical" chunk is a private one decoders skip)."""
    keep = []
    for s, e, k in _png_iter(data):
        if k in _PNG_PICTURE or (k in _PNG_RENDERING and e - s - 12 in _PNG_SIZES[k]):
            keep.append(data[s:e])
    return data[:8] + b"".join(keep)
