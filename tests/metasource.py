"""A source image carrying every tag the metadata policy has an opinion about, written by
exiftool itself (plus what exiftool will not write: maker note, Adobe's private DNG
tags, an MPF preview), and the policy's expected outcome for each tag, stated here
independently of amberpicd's table.

Each row: what exiftool reads (``family1:Name``), how to write it, and the groups
that keep it. String values are unique (``S-<name>``) so that a leak also shows in the
raw bytes of an output.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import images
from PIL import Image, ImageCms

EXIF_ALL = frozenset({"exif"})


@dataclass(frozen=True)
class Row:
    key: str  # exiftool -G1 key: "IFD0:Artist", "XMP-dc:Creator", ...
    value: str
    keep: frozenset[str]  # the groups that keep it; empty: never written
    write: str | None = None  # exiftool tag to write ("" = already written by Pillow)

    @property
    def secret(self) -> bytes | None:
        """The raw bytes that show this tag in a file (unique ASCII strings only: the
        XP* tags are UCS-2)."""
        ascii_value = self.value.startswith("S-") and not self.key.startswith("IFD0:XP")
        ascii_value = ascii_value and self.key != "XMP-xmp:ThumbnailImage"  # base64
        return self.value.encode() if ascii_value else None


def _r(key: str, value: str, *keep: str, write: str | None = None) -> Row:
    groups = frozenset(keep)
    # `exif` is the whole EXIF family but GPS: every IFD0/ExifIFD tag another group keeps.
    if key.split(":")[0] in ("IFD0", "ExifIFD") and groups:
        groups |= EXIF_ALL
    return Row(key, value, groups, key if write is None else write)


ROWS = [
    # EXIF IFD0
    _r("IFD0:ImageDescription", "S-ImageDescription", "exif"),
    _r("IFD0:Model", "S-Model", "camera"),
    _r("IFD0:Software", "S-Software", "exif"),
    _r("IFD0:ModifyDate", "2024:05:06 07:08:09", "datetime"),
    _r("IFD0:Artist", "S-Artist", "copyright"),
    _r("IFD0:Copyright", "S-Copyright", "copyright"),
    _r("IFD0:XPAuthor", "S-XPAuthor", "copyright"),
    _r("IFD0:XPTitle", "S-XPTitle", "exif"),
    _r("IFD0:HostComputer", "S-HostComputer"),
    # EXIF ExifIFD
    _r("ExifIFD:DateTimeOriginal", "2024:05:06 07:08:10", "datetime"),
    _r("ExifIFD:CreateDate", "2024:05:06 07:08:11", "datetime"),
    _r("ExifIFD:OffsetTimeOriginal", "+02:00", "datetime"),
    _r("ExifIFD:ExposureTime", "1/250", "camera"),
    _r("ExifIFD:FNumber", "2.8", "camera"),
    _r("ExifIFD:ISO", "400", "camera"),
    _r("ExifIFD:LensMake", "S-LensMake", "camera"),
    _r("ExifIFD:LensModel", "S-LensModel", "camera"),
    _r("ExifIFD:UserComment", "S-UserComment", "exif"),
    _r("ExifIFD:ImageUniqueID", "S-ImageUniqueID"),
    _r("ExifIFD:LensSerialNumber", "S-LensSerialNumber"),
    _r("ExifIFD:OwnerName", "S-OwnerName", write=""),  # 0xa430, and 0xfde8 below
    _r("ExifIFD:SerialNumber", "S-SerialNumber", write=""),  # 0xa431, and 0xfde9 below
    _r("ExifIFD:OwnerName", "S-AdobeOwnerName", write=""),
    _r("ExifIFD:SerialNumber", "S-AdobeSerialNumber", write=""),
    _r("ExifIFD:Lens", "S-AdobeLens", write=""),
    _r("IFD0:Make", "Canon", "camera", write=""),  # Canon: exiftool decodes the maker note
    # GPS
    _r("GPS:GPSLatitude", "48.5", "gps"),
    _r("GPS:GPSLatitudeRef", "N", "gps"),
    _r("GPS:GPSLongitude", "2.25", "gps"),
    _r("GPS:GPSLongitudeRef", "E", "gps"),
    _r("GPS:GPSMapDatum", "S-GPSMapDatum", "gps"),
    _r("GPS:GPSVersionID", "2.3.0.0", "gps", write=""),  # exiftool adds it
    # XMP, by namespace
    _r("XMP-dc:Creator", "S-XmpCreator", "copyright"),
    _r("XMP-dc:Rights", "S-XmpRights", "copyright"),
    _r("XMP-xmpRights:UsageTerms", "S-UsageTerms", "copyright"),
    _r("XMP-photoshop:Credit", "S-Credit", "copyright"),
    _r("XMP-tiff:Artist", "S-TiffArtist", "copyright"),
    _r("XMP-dc:Title", "S-XmpTitle", "xmp"),
    _r("XMP-dc:Description", "S-XmpDescription", "xmp"),
    _r("XMP-dc:Subject", "S-XmpKeyword", "xmp"),
    _r("XMP-xmp:Rating", "3", "xmp"),
    _r("XMP-xmp:CreatorTool", "S-CreatorTool", "xmp"),
    _r("XMP-photoshop:Headline", "S-Headline", "xmp"),
    _r("XMP-lr:HierarchicalSubject", "S-Hierarchy", "xmp"),
    _r("XMP-xmp:CreateDate", "2024:05:06 07:08:12", "datetime"),
    _r("XMP-photoshop:DateCreated", "2024:05:06 07:08:13", "datetime"),
    _r("XMP-exif:DateTimeOriginal", "2024:05:06 07:08:14", "datetime"),
    _r("XMP-tiff:Make", "S-XmpMake", "camera"),
    _r("XMP-aux:Lens", "S-AuxLens", "camera"),
    _r("XMP-exifEX:LensModel", "S-ExLensModel", "camera"),
    _r("XMP-exif:FNumber", "4.0", "camera"),
    _r("XMP-exif:GPSLatitude", "48.75", "gps"),
    _r("XMP-exif:GPSLongitude", "2.5", "gps"),
    _r("XMP-photoshop:City", "S-PsCity", "gps"),
    _r("XMP-photoshop:Country", "S-PsCountry", "gps"),
    _r("XMP-iptcCore:Location", "S-CoreLocation", "gps"),
    _r("XMP-iptcExt:LocationShownCity", "S-ShownCity", "gps"),
    _r("XMP-iptcExt:LocationCreatedSublocation", "S-CreatedSub", "gps"),
    _r("XMP-aux:SerialNumber", "S-AuxSerial"),
    _r("XMP-aux:LensSerialNumber", "S-AuxLensSerial"),
    _r("XMP-aux:OwnerName", "S-AuxOwner"),
    _r("XMP-exifEX:SerialNumber", "S-ExBodySerial"),
    _r("XMP-exifEX:LensSerialNumber", "S-ExLensSerial"),
    _r("XMP-exifEX:OwnerName", "S-ExOwner"),
    _r("XMP-exif:ImageUniqueID", "S-XmpUniqueID"),
    _r("XMP-xmpMM:DocumentID", "S-DocumentID"),
    _r("XMP-xmpMM:InstanceID", "S-InstanceID"),
    _r("XMP-xmpMM:OriginalDocumentID", "S-OriginalDocumentID"),
    _r("XMP-iptcCore:CreatorCity", "S-CreatorCity"),  # CreatorContactInfo: an address
    _r("XMP-xmp:ThumbnailImage", "S-XmpThumbnail", write="XMP-xmp:ThumbnailImage"),
    # IPTC-IIM: never written (README)
    _r("IPTC:By-line", "S-Byline"),
    _r("IPTC:CopyrightNotice", "S-IptcCopyright"),
    _r("IPTC:City", "S-IptcCity"),
    _r("IPTC:Keywords", "S-IptcKeyword"),
    # JPEG comment
    _r("File:Comment", "S-JpegComment", write="Comment"),
]
# Blocks a source has and no output may: the thumbnail, the MPF preview, maker notes.
NEVER_GROUPS = ("IFD1", "MPF0", "MPImage2", "Canon", "IPTC", "Photoshop")
# exiftool's own key for the maker note's serial: no output may show it.
MAKER_SERIAL = "MakerNotes:Canon:SerialNumber"


def canon_maker_note() -> bytes:
    """A Canon-style maker note (a bare IFD) with a serial and trailing private bytes."""
    entries = [(0x000C, 4, 1, 987654321)]  # SerialNumber
    note = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        note += struct.pack("<HHII", tag, kind, count, value)
    return note + struct.pack("<I", 0) + b"S-MakerNote"


def pillow_exif() -> bytes:
    """What exiftool would not write as we need it: Canon make (so the maker note is
    decoded), the maker note, and the 0xa43x and Adobe 0xfde8..0xfdea spellings apart."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    sub = exif.get_ifd(0x8769)
    sub[0x927C] = canon_maker_note()
    sub[0xA430] = "S-OwnerName"
    sub[0xA431] = "S-SerialNumber"
    sub[0xFDE8] = "S-AdobeOwnerName"
    sub[0xFDE9] = "S-AdobeSerialNumber"
    sub[0xFDEA] = "S-AdobeLens"
    return exif.tobytes()


def make_source(path: Path, picture: Image.Image | None = None) -> Path:
    """A source with every row exiftool can write into its format: for ``.jpg`` an MPO
    (second frame: an MPF preview) with an IFD1 thumbnail, IPTC and a comment; ``.tiff``
    and ``.png`` take what those formats hold."""
    im = picture or images.upright(480, 360)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    options: dict = {"exif": pillow_exif(), "icc_profile": srgb}
    if path.suffix == ".jpg":
        preview = im.resize((160, 120))
        im.save(path, "MPO", save_all=True, append_images=[preview], quality=92, **options)
    elif path.suffix == ".png":
        im.save(path, "PNG", **options)
    else:
        tags = Image.Exif()
        tags.load(pillow_exif())
        im.save(path, "TIFF", exif=tags, icc_profile=srgb, compression="raw")
    thumb = path.with_name("thumb.jpg")
    images.upright(32, 24).save(thumb, "JPEG")
    args = [f"-{row.write}={row.value}" for row in ROWS if row.write]
    args.append(f"-ThumbnailImage<={thumb}")
    subprocess.run(
        ["exiftool", "-q", "-m", "-overwrite_original", *args, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    thumb.unlink()
    return path


def read_tags(*paths: Path) -> dict[Path, list[tuple[str, str]]]:
    """exiftool's (``family0:family1:Name``, value) pairs per file, duplicates kept
    (``-a``; family 4 names the copies, and is dropped here)."""
    proc = subprocess.run(
        ["exiftool", "-j", "-a", "-u", "-G0:1:4", *map(str, paths)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    found = {}
    for pairs in json.loads(proc.stdout, object_pairs_hook=lambda p: p):
        source = Path(dict(pairs)["SourceFile"])
        found[source] = [
            (":".join(p for p in k.split(":") if not re.fullmatch(r"Copy\d+", p)), str(v))
            for k, v in pairs
            if k != "SourceFile"
        ]
    return found
