"""Which image format a file really is, from its first bytes (never its extension)."""

from __future__ import annotations

# HEIF/AVIF share the ISO-BMFF "ftyp" box; the major/compatible brands tell them apart.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}

SNIFF_BYTES = 64


def sniff(head: bytes) -> str | None:
    """The format name (jpeg, png, gif, webp, tiff, bmp, heif, avif, or a name we refuse
    such as psd/eps/pdf) of data starting with ``head``; None when unrecognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 14:
        return "bmp"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 48), 4)}
        if brands & _AVIF_BRANDS and head[8:12] not in _HEIF_BRANDS - {b"mif1", b"msf1"}:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heif"
        return None
    if head.startswith(b"8BPS"):
        return "psd"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "eps"
    if head.startswith(b"%PDF"):
        return "pdf"
    return None
