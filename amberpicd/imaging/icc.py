"""The ICC profile an output carries (``keep_metadata: [icc]``): the source's, with only
the tags that say how colours look.

A profile is colour data, but its tag table may hold anything: calibration tools and
operating systems put the display's make, model and serial number (``mmod``, ``dmdd``,
DisplayCAL's ``meta`` dictionary with the EDID serial), measurement targets and video
card tables in it. So the tags are kept by allowlist; a profile that has only those is
written byte for byte, one that loses any is rebuilt (its profile ID, a checksum that
no longer matches, zeroed). Pure bytes: no Pillow here.
"""

from __future__ import annotations

import struct

# Tags that change how colours are rendered, or that a profile must have (desc, cprt).
COLOUR_TAGS = frozenset(
    {
        b"desc",
        b"cprt",
        b"wtpt",
        b"bkpt",
        b"lumi",
        b"chad",
        b"chrm",
        b"arts",
        b"rXYZ",
        b"gXYZ",
        b"bXYZ",
        b"rTRC",
        b"gTRC",
        b"bTRC",
        b"kTRC",
        b"A2B0",
        b"A2B1",
        b"A2B2",
        b"A2B3",
        b"B2A0",
        b"B2A1",
        b"B2A2",
        b"B2A3",
        b"D2B0",
        b"D2B1",
        b"D2B2",
        b"D2B3",
        b"B2D0",
        b"B2D1",
        b"B2D2",
        b"B2D3",
        b"gamt",
        b"pre0",
        b"pre1",
        b"pre2",
        b"tech",
        b"view",
        b"meas",
        b"ncl2",
        b"clrt",
        b"clro",
        b"clot",
        b"ciis",
        b"cicp",
        b"rig0",
        b"rig2",
        b"bfd ",
    }
)
_HEADER = 128
_PROFILE_ID = slice(84, 100)


def icc_to_keep(icc: bytes) -> bytes | None:
    """``icc`` with only its colour tags; unchanged when it has no other; None when its
    tag table cannot be read (then nothing of it is written: LittleCMS, and so viewers,
    would not use it either)."""
    try:
        tags = _tags(icc)
    except (struct.error, ValueError):
        return None
    kept = [(sig, start, size) for sig, start, size in tags if sig in COLOUR_TAGS]
    if len(kept) == len(tags):
        return icc
    table, data, placed = b"", b"", {}
    offset = _HEADER + 4 + 12 * len(kept)
    for sig, start, size in kept:
        if (start, size) not in placed:  # tags may share one element
            placed[(start, size)] = offset + len(data)
            data += icc[start : start + size] + b"\0" * (-size % 4)
        table += sig + struct.pack(">II", placed[(start, size)], size)
    body = table + data
    header = bytearray(icc[:_HEADER])
    header[0:4] = struct.pack(">I", _HEADER + 4 + len(body))
    header[_PROFILE_ID] = bytes(16)
    return bytes(header) + struct.pack(">I", len(kept)) + body


def _tags(icc: bytes) -> list[tuple[bytes, int, int]]:
    if len(icc) < _HEADER + 4 or icc[36:40] != b"acsp":
        raise ValueError("not an ICC profile")
    (count,) = struct.unpack(">I", icc[_HEADER : _HEADER + 4])
    if _HEADER + 4 + 12 * count > len(icc):
        raise ValueError("tag table past the end")
    tags = []
    for i in range(count):
        at = _HEADER + 4 + 12 * i
        sig = icc[at : at + 4]
        start, size = struct.unpack(">II", icc[at + 4 : at + 12])
        if start + size > len(icc) or start < _HEADER:
            raise ValueError("tag past the end")
        tags.append((sig, start, size))
    return tags
