"""The metadata policy as data: which tags each ``keep_metadata`` group keeps, per family.

This is the one table. metadata.py (EXIF), xmp.py (XMP) and the README's group table
are all read from it; a tag or property that no group names here is never written.
Names are exiftool's, so tests can compare them with what exiftool reads back.

Families:
- ``ifd0``, ``exif_ifd``, ``gps_ifd``: EXIF/TIFF tags by IFD, ``{exiftool name: tag id}``;
- ``xmp``: XMP properties as ``prefix:Name`` (``prefix:*`` for a whole namespace), with
  the namespace URIs in ``XMP_NAMESPACES``.
IPTC-IIM datasets are never written (see ``NEVER_SUMMARY``): XMP has the same fields,
and of the output formats only JPEG and TIFF have a place for IIM.

Nothing here imports Pillow, so the config schema and the README check can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Group:
    """One ``keep_metadata`` group: what it keeps, family by family."""

    name: str
    summary: str  # the README's "what it keeps" column
    icc: bool = False
    ifd0: dict[str, int] = field(default_factory=dict)
    exif_ifd: dict[str, int] = field(default_factory=dict)
    gps_ifd: dict[str, int] = field(default_factory=dict)
    xmp: tuple[str, ...] = ()


XMP_NAMESPACES: dict[str, str] = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "xmpNote": "http://ns.adobe.com/xmp/note/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
}

_GPS_TAGS = (  # noqa: SIM905
    "GPSVersionID GPSLatitudeRef GPSLatitude GPSLongitudeRef GPSLongitude GPSAltitudeRef "
    "GPSAltitude GPSTimeStamp GPSSatellites GPSStatus GPSMeasureMode GPSDOP GPSSpeedRef "
    "GPSSpeed GPSTrackRef GPSTrack GPSImgDirectionRef GPSImgDirection GPSMapDatum "
    "GPSDestLatitudeRef GPSDestLatitude GPSDestLongitudeRef GPSDestLongitude "
    "GPSDestBearingRef GPSDestBearing GPSDestDistanceRef GPSDestDistance "
    "GPSProcessingMethod GPSAreaInformation GPSDateStamp GPSDifferential "
    "GPSHPositioningError"
).split()
# The GPS IFD's tags are numbered 0..31 in the order above (EXIF 2.32, table 15).
_GPS_IFD = {name: number for number, name in enumerate(_GPS_TAGS)}
# XMP's exif namespace has the same names, but folds these into other values.
_GPS_FOLDED = {"GPSLatitudeRef", "GPSLongitudeRef", "GPSDestLatitudeRef", "GPSDestLongitudeRef"}
_GPS_XMP = tuple(f"exif:{n}" for n in _GPS_TAGS if n not in _GPS_FOLDED | {"GPSDateStamp"})

_EXPOSURE_IFD = {
    "ExposureTime": 0x829A,
    "FNumber": 0x829D,
    "ExposureProgram": 0x8822,
    "ISO": 0x8827,
    "SensitivityType": 0x8830,
    "StandardOutputSensitivity": 0x8831,
    "RecommendedExposureIndex": 0x8832,
    "ShutterSpeedValue": 0x9201,
    "ApertureValue": 0x9202,
    "BrightnessValue": 0x9203,
    "ExposureCompensation": 0x9204,
    "MaxApertureValue": 0x9205,
    "SubjectDistance": 0x9206,
    "MeteringMode": 0x9207,
    "LightSource": 0x9208,
    "Flash": 0x9209,
    "FocalLength": 0x920A,
    "ExposureIndex": 0xA215,
    "SensingMethod": 0xA217,
    "ExposureMode": 0xA402,
    "WhiteBalance": 0xA403,
    "DigitalZoomRatio": 0xA404,
    "FocalLengthIn35mmFormat": 0xA405,
    "SceneCaptureType": 0xA406,
    "GainControl": 0xA407,
    "Contrast": 0xA408,
    "Saturation": 0xA409,
    "Sharpness": 0xA40A,
    "SubjectDistanceRange": 0xA40C,
    "LensInfo": 0xA432,  # EXIF LensSpecification
    "LensMake": 0xA433,
    "LensModel": 0xA434,
}
_EXPOSURE_XMP = (  # noqa: SIM905
    "ExposureTime FNumber ExposureProgram ISOSpeedRatings ShutterSpeedValue "
    "ApertureValue BrightnessValue ExposureBiasValue MaxApertureValue SubjectDistance "
    "MeteringMode LightSource Flash FocalLength ExposureIndex SensingMethod ExposureMode "
    "WhiteBalance DigitalZoomRatio FocalLengthIn35mmFilm SceneCaptureType GainControl "
    "Contrast Saturation Sharpness SubjectDistanceRange"
).split()

GROUPS: dict[str, Group] = {
    group.name: group
    for group in (
        Group("icc", "the colour profile", icc=True),
        Group(
            "copyright",
            "who made it and its rights",
            ifd0={"Artist": 0x013B, "Copyright": 0x8298, "XPAuthor": 0x9C9D},
            xmp=(
                "dc:creator",
                "dc:rights",
                "xmpRights:Certificate",
                "xmpRights:Marked",
                "xmpRights:Owner",
                "xmpRights:UsageTerms",
                "xmpRights:WebStatement",
                "tiff:Artist",
                "tiff:Copyright",
                "photoshop:Credit",
                "photoshop:AuthorsPosition",
            ),
        ),
        Group(
            "datetime",
            "when it was taken and changed, with time zone offsets",
            ifd0={"ModifyDate": 0x0132},
            exif_ifd={
                "DateTimeOriginal": 0x9003,
                "CreateDate": 0x9004,
                "OffsetTime": 0x9010,
                "OffsetTimeOriginal": 0x9011,
                "OffsetTimeDigitized": 0x9012,
                "SubSecTime": 0x9290,
                "SubSecTimeOriginal": 0x9291,
                "SubSecTimeDigitized": 0x9292,
            },
            xmp=(
                "xmp:CreateDate",
                "xmp:ModifyDate",
                "xmp:MetadataDate",
                "photoshop:DateCreated",
                "exif:DateTimeOriginal",
                "exif:DateTimeDigitized",
                "tiff:DateTime",
            ),
        ),
        Group(
            "camera",
            "camera make and model, lens, exposure settings",
            ifd0={"Make": 0x010F, "Model": 0x0110},
            exif_ifd=_EXPOSURE_IFD,
            xmp=(
                "tiff:Make",
                "tiff:Model",
                "aux:Lens",
                "aux:LensInfo",
                "exifEX:LensMake",
                "exifEX:LensModel",
                "exifEX:LensSpecification",
                "exifEX:PhotographicSensitivity",
                "exifEX:SensitivityType",
                *(f"exif:{name}" for name in _EXPOSURE_XMP),
            ),
        ),
        Group(
            "gps",
            "where it was taken: the GPS block and named places. "
            "Location survives **only** if `gps` is named",
            gps_ifd=_GPS_IFD,
            xmp=(
                *_GPS_XMP,
                "photoshop:City",
                "photoshop:State",
                "photoshop:Country",
                "Iptc4xmpCore:Location",
                "Iptc4xmpCore:CountryCode",
                "Iptc4xmpExt:LocationShown",
                "Iptc4xmpExt:LocationCreated",
            ),
        ),
        Group(
            "exif",
            "EXIF alone: the EXIF tags of `copyright`, `datetime` and `camera`, plus "
            "description, software, rating, comments; never GPS",
            ifd0={
                "ImageDescription": 0x010E,
                "XResolution": 0x011A,
                "YResolution": 0x011B,
                "ResolutionUnit": 0x0128,
                "Software": 0x0131,
                "Rating": 0x4746,
                "RatingPercent": 0x4749,
                "XPTitle": 0x9C9B,
                "XPComment": 0x9C9C,
                "XPKeywords": 0x9C9E,
                "XPSubject": 0x9C9F,
            },
            exif_ifd={
                "ExifVersion": 0x9000,
                "UserComment": 0x9286,
                "ColorSpace": 0xA001,
                "SceneType": 0xA301,
                "FileSource": 0xA300,
                "CustomRendered": 0xA401,
            },
        ),
        Group(
            "xmp",
            "descriptive XMP: title, description, keywords, rating, label, headline",
            xmp=(
                "dc:title",
                "dc:description",
                "dc:subject",
                "xmp:Rating",
                "xmp:Label",
                "xmp:CreatorTool",
                "photoshop:Headline",
                "photoshop:Category",
                "photoshop:SupplementalCategories",
                "photoshop:Instructions",
                "Iptc4xmpCore:IntellectualGenre",
                "Iptc4xmpCore:Scene",
                "Iptc4xmpCore:SubjectCode",
                "Iptc4xmpExt:Event",
                "lr:hierarchicalSubject",
            ),
        ),
    )
}

# `exif` is the whole EXIF family but GPS: it also keeps the EXIF tags of the groups above.
_exif = GROUPS["exif"]
for _name in ("copyright", "datetime", "camera"):
    _exif.ifd0.update(GROUPS[_name].ifd0)
    _exif.exif_ifd.update(GROUPS[_name].exif_ifd)

# Structure fields (inside struct-valued properties) a kept property may hold, by the
# namespace its struct is in; any other field is dropped with everything under it.
XMP_STRUCT_FIELDS: dict[str, tuple[str, ...]] = {
    "exif:Flash": ("exif:Fired", "exif:Return", "exif:Mode", "exif:Function", "exif:RedEyeMode"),
    "Iptc4xmpExt:LocationShown": tuple(
        f"Iptc4xmpExt:{name}"
        for name in [
            "City",
            "CountryCode",
            "CountryName",
            "ProvinceState",
            "Sublocation",
            "WorldRegion",
            "LocationName",
        ]
    ),
}
XMP_STRUCT_FIELDS["Iptc4xmpExt:LocationCreated"] = XMP_STRUCT_FIELDS["Iptc4xmpExt:LocationShown"]

# Never written, whatever the groups say: listed so that tests can prove each one is
# dropped, and so that no group can name one (checked below). Everything that no group
# names is dropped too; these are the ones worth saying out loud.
NEVER_IFD0 = {
    "Orientation": 0x0112,  # pixels are written upright instead
    "HostComputer": 0x013C,  # the owner's machine name
    "ApplicationNotes": 0x02BC,  # XMP inside EXIF: XMP is rebuilt on its own
    "IPTC-NAA": 0x83BB,
    "PhotoshopSettings": 0x8649,
    "ExifOffset": 0x8769,  # pointers, rebuilt for what is kept
    "GPSInfo": 0x8825,
    "PrintIM": 0xC4A5,
    "DNGPrivateData": 0xC634,
}
NEVER_EXIF_IFD = {
    "MakerNote": 0x927C,
    "InteropOffset": 0xA005,
    "ImageUniqueID": 0xA420,
    "OwnerName": 0xA430,  # CameraOwnerName
    "SerialNumber": 0xA431,  # BodySerialNumber
    "LensSerialNumber": 0xA435,
    "Padding": 0xEA1C,
    "OffsetSchema": 0xEA1D,
    "AdobeOwnerName": 0xFDE8,  # Adobe DNG Converter's private copies (exiftool: OwnerName,
    "AdobeSerialNumber": 0xFDE9,  # SerialNumber, Lens)
    "AdobeLens": 0xFDEA,
}
NEVER_XMP = (
    "xmpMM:*",  # DocumentID, InstanceID, OriginalDocumentID, DerivedFrom, History
    "xmpNote:HasExtendedXMP",
    "xmp:Thumbnails",
    "aux:SerialNumber",
    "aux:LensSerialNumber",
    "aux:OwnerName",
    "aux:ImageNumber",
    "exifEX:BodySerialNumber",
    "exifEX:LensSerialNumber",
    "exifEX:CameraOwnerName",
    "exif:ImageUniqueID",
    "tiff:Orientation",
    "Iptc4xmpCore:CreatorContactInfo",
)
NEVER_SUMMARY = (
    "maker notes (vendor blobs: serials, sometimes location)",
    "embedded thumbnails and previews: EXIF IFD1, `xmp:Thumbnails`, MPF",
    "serial numbers in every spelling: EXIF `SerialNumber`, `LensSerialNumber`, Adobe's "
    "`0xfde9`, `aux:SerialNumber`, `exifEX:*SerialNumber`, maker-note copies",
    "owner names: `CameraOwnerName`, Adobe's `0xfde8`, `aux:OwnerName`, `exifEX:CameraOwnerName`",
    "unique IDs: `ImageUniqueID`, `xmpMM:DocumentID`/`InstanceID`/`OriginalDocumentID` "
    "and the rest of `xmpMM`",
    "`HostComputer` (the machine's name)",
    "Google's extended XMP (`xmpNote:HasExtendedXMP`)",
    "IPTC-IIM datasets, neither written nor converted (their XMP twins are kept by "
    "`copyright` and `gps` when the source has them), Photoshop resources, JPEG comments "
    "and PNG text chunks",
    "the orientation tag: pixels are always rotated upright instead",
    "an ICC profile's tags other than colour ones (`icc` keeps the rendering tags: a "
    "display's make, model and serial in `mmod`/`dmdd`, DisplayCAL's `meta`, `vcgt` go)",
)


def readme_table() -> str:
    """The README's group table, as Markdown; tests check the README holds it verbatim."""
    rows = ["| group | what it keeps | EXIF tags | XMP properties |", "| --- | --- | --- | --- |"]
    for group in GROUPS.values():
        others = [g for g in GROUPS.values() if g is not group]
        # exif repeats the other groups' EXIF tags; its summary says so, the row lists its own.
        tags = [
            t
            for t in (*group.ifd0, *group.exif_ifd)
            if group.name != "exif" or not any(t in (*g.ifd0, *g.exif_ifd) for g in others)
        ]
        if group.gps_ifd:
            tags.append(f"the GPS IFD ({len(group.gps_ifd)} tags)")
        by_prefix: dict[str, list[str]] = {}
        for prop in group.xmp:
            prefix, _, name = prop.partition(":")
            by_prefix.setdefault(prefix, []).append(name)
        xmp = "; ".join(f"{prefix}: {', '.join(names)}" for prefix, names in by_prefix.items())
        rows.append(
            f"| `{group.name}` | {group.summary} | {', '.join(tags) or '—'} | {xmp or '—'} |"
        )
    return "\n".join(rows)


def readme_never() -> str:
    """The README's never-list, as Markdown bullets."""
    return "\n".join(f"- {line}" for line in NEVER_SUMMARY)


def never_xmp(prop: str) -> bool:
    """True when the XMP property ``prefix:Name`` is on the never-list."""
    prefix = prop.partition(":")[0]
    return prop in NEVER_XMP or f"{prefix}:*" in NEVER_XMP


def check_table() -> None:
    """Raise ValueError when a group names a never-tag or an unknown namespace."""
    for group in GROUPS.values():
        bad = set(group.ifd0.values()) & set(NEVER_IFD0.values())
        bad |= set(group.exif_ifd.values()) & set(NEVER_EXIF_IFD.values())
        bad |= {p for p in group.xmp if never_xmp(p) or p.split(":")[0] not in XMP_NAMESPACES}
        if bad:
            raise ValueError(f"metadata group {group.name} names never-written tags: {bad}")


check_table()
