"""GIF's own metadata blocks, which Pillow neither reads nor writes: the ICC profile and
XMP packet stored as application extensions (``ICCRGBG1012`` and ``XMP DataXMP``).

Walks the block structure (header, screen, colour tables, extensions, images) rather
than searching the bytes, so image data can never be mistaken for a block. Pure Python.
"""

from __future__ import annotations

ICC_APP = b"ICCRGBG1012"
XMP_APP = b"XMP DataXMP"
MAX_BLOCKS = 1_000_000  # the walk's bound on malformed files
# After a raw XMP packet: bytes 1, 0xFF down to 0x00, then the terminator, so a reader that
# takes the packet for sub-blocks is walked to the end of the extension (Adobe's XMP spec).
MAGIC_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"


def with_xmp(data: bytes, xmp: bytes) -> bytes:
    """``data`` (a whole GIF) with an XMP application extension right after its screen
    descriptor and global colour table, where readers look first. The packet is rebuilt
    UTF-8 XML (imaging.xmp), which holds no NUL byte, so it cannot end the block early."""
    if data[:3] != b"GIF" or len(data) < 13 or b"\x00" in xmp:
        raise ValueError("not a GIF, or an XMP packet that cannot be stored in one")
    pos = 13 + _table_size(data[10])
    return data[:pos] + b"\x21\xff\x0b" + XMP_APP + xmp + MAGIC_TRAILER + data[pos:]


def gif_metadata(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(ICC profile, XMP packet) of a GIF; None for each that is absent or malformed."""
    icc = xmp = None
    try:
        for app, start, end in _applications(data):
            if app == ICC_APP and icc is None:
                icc = _sub_blocks(data, start)
            elif app == XMP_APP and xmp is None:
                xmp = _raw_xmp(data[start:end])
    except IndexError:
        pass  # truncated: keep what was found before the damage
    return icc or None, xmp or None


def _applications(data: bytes):
    """(identifier + auth code, data start, end) of each application extension."""
    if data[:3] != b"GIF" or len(data) < 13:
        return
    pos = 13 + _table_size(data[10])
    for _ in range(MAX_BLOCKS):
        kind = data[pos]
        if kind == 0x3B:  # trailer
            return
        if kind == 0x21:
            label = data[pos + 1]
            pos += 2
            if label == 0xFF and data[pos] == 11:
                app, start = data[pos + 1 : pos + 12], pos + 12
                pos = _skip(data, start)
                yield app, start, pos
                continue
            pos = _skip(data, pos)
        elif kind == 0x2C:  # image: descriptor, local colour table, LZW code size, data
            pos += 10 + _table_size(data[pos + 9])
            pos = _skip(data, pos + 1)
        else:
            return


def _table_size(flags: int) -> int:
    return 3 * (2 << (flags & 7)) if flags & 0x80 else 0


def _skip(data: bytes, pos: int) -> int:
    """The position after the sub-blocks starting at ``pos`` (past the 0 terminator)."""
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _sub_blocks(data: bytes, pos: int) -> bytes:
    parts = []
    while size := data[pos]:
        parts.append(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
    return b"".join(parts)


def _raw_xmp(block: bytes) -> bytes:
    """XMP in GIF is written raw (its length bytes are the packet's own characters),
    followed by a 258-byte "magic trailer" that walks any reader to the terminator."""
    end = block.find(b"<?xpacket end=")
    end = block.find(b"?>", end) + 2 if end >= 0 else block.rfind(b">") + 1
    return block[:end]
