"""What an output keeps of its source's metadata, per the rule's ``keep_metadata`` groups.

Nothing is carried over unless a group names it: outputs are built from an empty EXIF
block (and an empty XMP packet), never by deleting from the source's, so unknown or
private tags cannot slip through. The policy itself is data: metadata_table.py.
"""

from __future__ import annotations

from collections.abc import Collection

from PIL import Image
from PIL.ExifTags import IFD

from amberpicd.imaging import xmp as xmp_packet
from amberpicd.imaging.metadata_table import GROUPS, NEVER_EXIF_IFD, NEVER_IFD0

IFD0 = 0  # the 0th (main) IFD; sub-IFDs are keyed by their pointer tag


def _wanted(groups: Collection[str]) -> dict[int, set[int]]:
    """IFD -> the tag ids the groups keep there (from the one table)."""
    wanted: dict[int, set[int]] = {IFD0: set(), IFD.Exif: set(), IFD.GPSInfo: set()}
    for name in groups:
        group = GROUPS[name]
        wanted[IFD0] |= set(group.ifd0.values())
        wanted[IFD.Exif] |= set(group.exif_ifd.values())
        wanted[IFD.GPSInfo] |= set(group.gps_ifd.values())
    # The never-list wins, whatever the table says (check_table also refuses such a table).
    wanted[IFD0] -= set(NEVER_IFD0.values())
    wanted[IFD.Exif] -= set(NEVER_EXIF_IFD.values())
    return {ifd: tags for ifd, tags in wanted.items() if tags}


def keep_icc(groups: Collection[str]) -> bool:
    """True when the ICC profile is written (the default policy keeps it)."""
    return "icc" in groups


def xmp_to_keep(xmp: bytes | None, groups: Collection[str]) -> bytes | None:
    """The XMP packet to write: rebuilt from the source's with only the properties the
    groups name (UTF-8), or None when none of them is there or the packet is unreadable."""
    if not xmp:
        return None
    return xmp_packet.rebuild(xmp, groups)


def exif_to_keep(source: Image.Exif, groups: Collection[str]) -> bytes | None:
    """The EXIF block to write (``Exif\\0\\0`` + TIFF structure), or None for none at all.

    Built from scratch with only the tags the groups keep; IFD1 (the thumbnail) is
    never copied. Returns None when no group applies or no kept tag is present.
    """
    wanted = _wanted(groups)
    if not wanted:
        return None

    out = Image.Exif()
    kept = 0
    for ifd, tags in wanted.items():
        values = dict(source) if ifd == IFD0 else source.get_ifd(ifd)
        chosen = {tag: value for tag, value in values.items() if tag in tags}
        if not chosen:
            continue  # get_ifd would create an empty sub-IFD, and a pointer to it
        target = out if ifd == IFD0 else out.get_ifd(ifd)
        target.update(chosen)
        kept += len(chosen)
    return out.tobytes() if kept else None
