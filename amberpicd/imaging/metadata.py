"""What an output keeps of its source's metadata, per the rule's ``keep_metadata`` groups.

Nothing is carried over unless a group names it: outputs are built from an empty EXIF
block, never by deleting from the source's, so unknown or private tags cannot slip
through. The table below is the whole policy.
"""

from __future__ import annotations

from collections.abc import Collection

from PIL import Image
from PIL.ExifTags import IFD, Base

IFD0 = 0  # the 0th (main) IFD; sub-IFDs are keyed by their pointer tag
EVERY = None  # every tag of that IFD, except those in NEVER

_DATES = frozenset(
    {
        Base.DateTimeOriginal,
        Base.DateTimeDigitized,
        Base.OffsetTime,
        Base.OffsetTimeOriginal,
        Base.OffsetTimeDigitized,
        Base.SubsecTime,
        Base.SubsecTimeOriginal,
        Base.SubsecTimeDigitized,
    }
)
_EXPOSURE = frozenset(
    {
        Base.LensMake,
        Base.LensModel,
        Base.LensSpecification,
        Base.ExposureTime,
        Base.FNumber,
        Base.ExposureProgram,
        Base.ISOSpeedRatings,
        Base.SensitivityType,
        Base.StandardOutputSensitivity,
        Base.RecommendedExposureIndex,
        Base.ShutterSpeedValue,
        Base.ApertureValue,
        Base.BrightnessValue,
        Base.ExposureBiasValue,
        Base.MaxApertureValue,
        Base.SubjectDistance,
        Base.MeteringMode,
        Base.LightSource,
        Base.Flash,
        Base.FocalLength,
        Base.FocalLengthIn35mmFilm,
        Base.ExposureIndex,
        Base.ExposureMode,
        Base.WhiteBalance,
        Base.DigitalZoomRatio,
        Base.SceneCaptureType,
        Base.GainControl,
        Base.Contrast,
        Base.Saturation,
        Base.Sharpness,
        Base.SubjectDistanceRange,
    }
)
# The descriptive tags of the 0th IFD. An allowlist, because in TIFF/DNG sources the
# 0th IFD also holds the image structure (strips, bit depth) and private blobs
# (DNGPrivateData, PrintIM) that must never be copied into another file.
_IFD0_DESCRIPTIVE = frozenset(
    {
        Base.ImageDescription,
        Base.Make,
        Base.Model,
        Base.XResolution,
        Base.YResolution,
        Base.ResolutionUnit,
        Base.Software,
        Base.DateTime,
        Base.Artist,
        Base.HostComputer,
        Base.Copyright,
        Base.Rating,
        Base.RatingPercent,
        Base.XPTitle,
        Base.XPComment,
        Base.XPAuthor,
        Base.XPKeywords,
        Base.XPSubject,
    }
)

# group -> {IFD -> tags kept there (EVERY: all of them)}
GROUPS: dict[str, dict[int, frozenset[int] | None]] = {
    "copyright": {IFD0: frozenset({Base.Artist, Base.Copyright})},
    "datetime": {IFD0: frozenset({Base.DateTime}), IFD.Exif: _DATES},
    "camera": {IFD0: frozenset({Base.Make, Base.Model}), IFD.Exif: _EXPOSURE},
    "gps": {IFD.GPSInfo: EVERY},
    "exif": {IFD0: _IFD0_DESCRIPTIVE, IFD.Exif: EVERY},
}

# Dropped whatever the groups say. Orientation: pixels are written upright. MakerNote:
# opaque vendor data (serials, sometimes location). Interop/padding: pointers and filler
# that make no sense outside the source file. XMP-in-EXIF: XMP is its own group.
NEVER: dict[int, frozenset[int]] = {
    IFD0: frozenset({Base.Orientation, Base.XMLPacket, IFD.Exif, IFD.GPSInfo}),
    # Maker notes are opaque; serial numbers, owner and unique ids identify a person or a
    # device: none of them is written, whatever groups are kept.
    IFD.Exif: frozenset(
        {
            Base.MakerNote,
            Base.ExifInteroperabilityOffset,
            0xEA1C,
            0xA420,  # ImageUniqueID
            0xA430,  # CameraOwnerName
            0xA431,  # BodySerialNumber
            0xA435,  # LensSerialNumber
        }
    ),
    IFD.GPSInfo: frozenset(),
}


def keep_icc(groups: Collection[str]) -> bool:
    """True when the ICC profile is written (the default policy keeps it)."""
    return "icc" in groups


def xmp_to_keep(xmp: bytes | None, groups: Collection[str]) -> bytes | None:
    """The XMP packet to write: the source's, whole, only when ``xmp`` is kept.

    XMP is passed as it is; it can repeat EXIF facts (dates, even GPS), which is why it
    is a group of its own that no other group implies.
    """
    return xmp if xmp and "xmp" in groups else None


def exif_to_keep(source: Image.Exif, groups: Collection[str]) -> bytes | None:
    """The EXIF block to write (``Exif\\0\\0`` + TIFF structure), or None for none at all.

    Built from scratch with only the tags the groups keep; IFD1 (the thumbnail) is
    never copied. Returns None when no group applies or no kept tag is present.
    """
    wanted: dict[int, set[int] | None] = {}
    for group in groups:
        for ifd, tags in GROUPS.get(group, {}).items():
            if ifd in wanted and wanted[ifd] is EVERY:
                continue
            wanted[ifd] = EVERY if tags is EVERY else (wanted.get(ifd) or set()) | tags
    if not wanted:
        return None

    out = Image.Exif()
    kept = 0
    for ifd, tags in wanted.items():
        values = dict(source) if ifd == IFD0 else source.get_ifd(ifd)
        chosen = {
            tag: value
            for tag, value in values.items()
            if (tags is EVERY or tag in tags) and tag not in NEVER[ifd]
        }
        if not chosen:
            continue  # get_ifd would create an empty sub-IFD, and a pointer to it
        target = out if ifd == IFD0 else out.get_ifd(ifd)
        target.update(chosen)
        kept += len(chosen)
    return out.tobytes() if kept else None
