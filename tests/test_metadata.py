"""What exif_to_keep / xmp_to_keep / keep_icc let through, group by group."""

from __future__ import annotations

import io
import struct
import subprocess
from itertools import combinations
from pathlib import Path
from xml.etree import ElementTree

import images
import pytest
from PIL import Image
from PIL.ExifTags import IFD, Base

from amberpicd.config.schema import METADATA_GROUPS
from amberpicd.imaging import metadata_table
from amberpicd.imaging.metadata import exif_to_keep, keep_icc, xmp_to_keep

GPS_MARKER = "GPS-DATUM-MARKER"
MAKERNOTE = b"MAKERNOTE-SECRET-SERIAL"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'


def rich_exif(orientation: int = 6) -> Image.Exif:
    """The factory's EXIF (camera, dates, copyright, GPS) plus what must never pass."""
    exif = images.exif_block(orientation, gps=True)
    exif[Base.XMLPacket] = XMP
    exif[Base.ImageDescription] = "A description"
    sub = exif.get_ifd(IFD.Exif)
    sub.update(
        {
            Base.MakerNote: MAKERNOTE,
            Base.LensModel: "TestLens",
            Base.FNumber: 2.8,
            Base.OffsetTimeOriginal: "+02:00",
            Base.BodySerialNumber: "BODY-123",
            Base.UserComment: b"ASCII\x00\x00\x00user comment",
        }
    )
    exif.get_ifd(IFD.GPSInfo)[0x12] = GPS_MARKER  # GPSMapDatum
    return exif


def kept(source: Image.Exif, groups: tuple[str, ...]) -> Image.Exif | None:
    data = exif_to_keep(source, groups)
    if data is None:
        return None
    out = Image.Exif()
    out.load(data)
    return out


def tags0(exif: Image.Exif) -> set[int]:
    """The 0th IFD's tags, without the pointers to sub-IFDs."""
    return set(exif) - {IFD.Exif, IFD.GPSInfo}


@pytest.mark.parametrize("groups", [(), ("icc",), ("xmp",), ("icc", "xmp")])
def test_no_exif_group_writes_nothing(groups: tuple[str, ...]) -> None:
    assert exif_to_keep(rich_exif(), groups) is None


def test_group_named_but_source_has_none_of_it() -> None:
    assert exif_to_keep(images.exif_block(1, gps=False), ("gps",)) is None
    assert exif_to_keep(Image.Exif(), ("exif", "copyright")) is None


def test_copyright_keeps_only_artist_and_copyright() -> None:
    out = kept(rich_exif(), ("copyright",))
    assert out is not None
    assert dict(out) == {Base.Artist: "Test Artist", Base.Copyright: "(c) Test Owner"}
    assert out.get_ifd(IFD.Exif) == {} and out.get_ifd(IFD.GPSInfo) == {}


def test_datetime_keeps_dates_only() -> None:
    out = kept(rich_exif(), ("datetime",))
    assert out is not None
    assert tags0(out) == {Base.DateTime}
    assert out.get_ifd(IFD.Exif) == {
        Base.DateTimeOriginal: "2024:05:06 07:08:09",
        Base.OffsetTimeOriginal: "+02:00",
    }
    assert out.get_ifd(IFD.GPSInfo) == {}


def test_camera_keeps_make_model_and_exposure_but_no_serial() -> None:
    out = kept(rich_exif(), ("camera",))
    assert out is not None
    assert tags0(out) == {Base.Make, Base.Model}
    sub = out.get_ifd(IFD.Exif)
    assert sub[Base.LensModel] == "TestLens"
    assert float(sub[Base.FNumber]) == 2.8
    assert Base.BodySerialNumber not in sub
    assert Base.DateTimeOriginal not in sub


def test_gps_keeps_the_gps_ifd_only() -> None:
    out = kept(rich_exif(), ("gps",))
    assert out is not None
    assert tags0(out) == set()
    gps = out.get_ifd(IFD.GPSInfo)
    assert gps[1] == "N" and gps[2] == (48.0, 51.0, 30.0) and gps[0x12] == GPS_MARKER
    assert out.get_ifd(IFD.Exif) == {}


def test_exif_keeps_everything_but_gps_makernote_serials_xmp_and_orientation() -> None:
    data = exif_to_keep(rich_exif(), ("exif",))
    assert data is not None
    out = Image.Exif()
    out.load(data)
    assert tags0(out) == {
        Base.Make,
        Base.Model,
        Base.DateTime,
        Base.Artist,
        Base.Copyright,
        Base.ImageDescription,
    }
    sub = out.get_ifd(IFD.Exif)
    assert sub[Base.DateTimeOriginal] == "2024:05:06 07:08:09"
    assert Base.BodySerialNumber not in sub  # identifies a device: never written
    assert Base.MakerNote not in sub
    assert out.get_ifd(IFD.GPSInfo) == {}
    # Independent of Pillow's parser: the raw block.
    assert MAKERNOTE not in data and GPS_MARKER.encode() not in data and XMP not in data


def test_exif_and_gps_together() -> None:
    out = kept(rich_exif(), ("exif", "gps"))
    assert out is not None
    assert out[Base.Make] == "TestMake"
    assert out.get_ifd(IFD.GPSInfo)[0x12] == GPS_MARKER


@pytest.mark.parametrize(
    "groups",
    [
        c
        for n in (1, 2, 3)
        for c in combinations(("copyright", "datetime", "camera", "gps", "exif"), n)
    ],
)
def test_orientation_and_makernote_never_written(groups: tuple[str, ...]) -> None:
    data = exif_to_keep(rich_exif(orientation=8), groups)
    assert data is not None
    out = Image.Exif()
    out.load(data)
    assert out.get(Base.Orientation, 1) == 1
    assert Base.XMLPacket not in out
    assert MAKERNOTE not in data


def _exif_with_thumbnail() -> bytes:
    """A little-endian EXIF block whose IFD1 points at a fake JPEG thumbnail.

    Pillow cannot write IFD1, so it is assembled by hand: IFD0 (Make) -> IFD1
    (JPEGInterchangeFormat, JPEGInterchangeFormatLength) -> thumbnail bytes.
    """
    make = b"ThumbCam\x00"
    thumb = b"\xff\xd8THUMBNAIL-OF-THE-UNCROPPED-ORIGINAL\xff\xd9"
    ifd0 = 8
    ifd1 = ifd0 + 2 + 12 + 4
    make_at = ifd1 + 2 + 2 * 12 + 4
    thumb_at = make_at + len(make)
    tiff = b"II*\x00" + struct.pack("<I", ifd0)
    tiff += struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make), make_at)
    tiff += struct.pack("<I", ifd1)
    tiff += struct.pack("<H", 2)
    tiff += struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
    tiff += struct.pack("<HHII", 0x0202, 4, 1, len(thumb))
    tiff += struct.pack("<I", 0)
    tiff += make + thumb
    return b"Exif\x00\x00" + tiff


def test_thumbnail_ifd1_is_never_copied() -> None:
    source = Image.Exif()
    source.load(_exif_with_thumbnail())
    assert source.get_ifd(IFD.IFD1)  # the fixture really has a thumbnail
    data = exif_to_keep(source, METADATA_GROUPS)
    assert data is not None
    assert b"ThumbCam" in data
    assert b"THUMBNAIL" not in data
    out = Image.Exif()
    out.load(data)
    assert out.get_ifd(IFD.IFD1) == {}


def test_tiff_structure_tags_are_not_carried_as_exif(tmp_path) -> None:
    path = tmp_path / "s.tiff"
    info = {Base.Artist: "Tiff Artist", Base.Software: "TiffSoft"}
    images.upright(32, 24).save(path, "TIFF", tiffinfo=info)
    with Image.open(path) as im:
        source = im.getexif()
    assert Base.StripOffsets in source  # the source really mixes structure and metadata
    out = kept(source, ("exif",))
    assert out is not None
    assert tags0(out) == {Base.Artist, Base.Software}


def test_source_from_a_real_jpeg_round_trip() -> None:
    buf = io.BytesIO()
    images.upright(32, 24).save(buf, "JPEG", exif=rich_exif().tobytes())
    with Image.open(buf) as im:
        source = im.getexif()
    out = kept(source, ("camera", "gps"))
    assert out is not None
    assert out[Base.Model] == "TestModel"
    assert out.get_ifd(IFD.GPSInfo)[0x12] == GPS_MARKER
    assert Base.DateTime not in out


def test_xmp_and_icc_policies() -> None:
    # XMP is rebuilt, never copied (issue 11): an empty packet keeps nothing.
    assert xmp_to_keep(XMP, ("xmp",)) is None
    assert xmp_to_keep(XMP, ("icc", "exif", "gps")) is None
    assert xmp_to_keep(None, ("xmp",)) is None
    assert keep_icc(("icc",)) and keep_icc(METADATA_GROUPS)
    assert not keep_icc(()) and not keep_icc(("exif", "xmp"))


# --- the one table: README, exiftool's names, the never-list ------------------------------


def test_readme_metadata_section_is_generated_from_the_table() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("<!-- metadata-table:begin")[1].split("-->", 1)[1]
    table = table.split("<!-- metadata-table:end -->")[0].strip()
    assert table == metadata_table.readme_table()
    never = readme.split("<!-- metadata-never:begin -->")[1].split("<!-- metadata-never:end")[0]
    assert never.strip() == metadata_table.readme_never()


def test_table_groups_are_the_config_groups() -> None:
    assert tuple(metadata_table.GROUPS) == METADATA_GROUPS


def _exiftool_tables(*groups: str) -> dict[str, set[tuple[str, str]]]:
    """exiftool's tag database (``-listx``): table name -> {(tag id, tag name)}."""
    tables: dict[str, set[tuple[str, str]]] = {}
    for group in groups:  # -listx takes one group at a time
        proc = subprocess.run(
            ["exiftool", "-listx", f"-{group}:All"], capture_output=True, timeout=120, check=True
        )
        for table in ElementTree.fromstring(proc.stdout).iter("table"):  # exiftool's output
            tags = tables.setdefault(table.get("name", ""), set())
            tags |= {(tag.get("id", ""), tag.get("name", "")) for tag in table.iter("tag")}
    return tables


XMP_TABLES = {
    "dc": "XMP::dc",
    "xmp": "XMP::xmp",
    "xmpRights": "XMP::xmpRights",
    "xmpMM": "XMP::xmpMM",
    "xmpNote": "XMP::xmpNote",
    "photoshop": "XMP::photoshop",
    "tiff": "XMP::tiff",
    "exif": "XMP::exif",
    "exifEX": "XMP::exifEX",
    "aux": "XMP::aux",
    "Iptc4xmpCore": "XMP::iptcCore",
    "Iptc4xmpExt": "XMP::iptcExt",
    "lr": "XMP::Lightroom",
}


IDENTIFYING = {
    0x013C: "HostComputer",
    0xA420: "ImageUniqueID",
    0xA430: "OwnerName",
    0xA431: "SerialNumber",
    0xA435: "LensSerialNumber",
    0xFDE8: "OwnerName",  # Adobe DNG Converter's copies
    0xFDE9: "SerialNumber",
    0xFDEA: "Lens",
}


def test_table_names_are_exiftools() -> None:
    """Every EXIF tag the table names has that id and name in exiftool's database; every
    XMP property (and struct field) is a property exiftool knows in that namespace."""
    tables = _exiftool_tables("EXIF", "XMP")  # EXIF lists the GPS table too
    exif, gps = tables["Exif::Main"], tables["GPS::Main"]
    problems = []
    for group in metadata_table.GROUPS.values():
        for name, tag in {**group.ifd0, **group.exif_ifd}.items():
            if (str(tag), name) not in exif:
                problems.append(f"{group.name}: EXIF {tag:#06x} is not {name}")
        for name, tag in group.gps_ifd.items():
            if (str(tag), name) not in gps:
                problems.append(f"{group.name}: GPS {tag:#06x} is not {name}")
        for prop in (*group.xmp, *metadata_table.NEVER_XMP):
            prefix, _, local = prop.partition(":")
            ids = {i for i, _ in tables[XMP_TABLES[prefix]]}
            if local != "*" and local not in ids:
                problems.append(f"{group.name}: XMP {prop} unknown to exiftool")
    for parent, fields in metadata_table.XMP_STRUCT_FIELDS.items():
        prefix, _, local = parent.partition(":")
        ids = {i for i, _ in tables[XMP_TABLES[prefix]]}
        for field in fields:
            if local + field.partition(":")[2] not in ids:
                problems.append(f"XMP struct field {parent}/{field} unknown to exiftool")
    # The never-list's identifying tags, by exiftool's own names for them.
    never = {**metadata_table.NEVER_IFD0, **metadata_table.NEVER_EXIF_IFD}.values()
    if 0x927C not in never:  # MakerNote (exiftool names it per maker)
        problems.append("never-list lacks MakerNote")
    for tag, name in IDENTIFYING.items():
        if tag not in never or (str(tag), name) not in exif:
            problems.append(f"never-list lacks {name} ({tag:#06x})")
    assert sorted(set(problems)) == [], "\n".join(sorted(set(problems)))


def test_a_table_naming_a_never_tag_is_refused(monkeypatch) -> None:
    bad = metadata_table.Group("exif", "", exif_ifd={"SerialNumber": 0xA431})
    monkeypatch.setitem(metadata_table.GROUPS, "exif", bad)
    with pytest.raises(ValueError, match="never-written"):
        metadata_table.check_table()
    bad = metadata_table.Group("xmp", "", xmp=("xmpMM:DocumentID",))
    monkeypatch.setitem(metadata_table.GROUPS, "xmp", bad)
    with pytest.raises(ValueError, match="never-written"):
        metadata_table.check_table()


def test_exif_never_keeps_serials_owners_ids_or_the_host_name() -> None:
    """Adobe's DNG private copies (0xfde8 OwnerName, 0xfde9 SerialNumber, 0xfdea Lens)
    sit in the Exif IFD; HostComputer in IFD0. No group, nor all of them, keeps one."""
    source = rich_exif()
    source[0x013C] = "HOST-MARKER"
    sub = source.get_ifd(IFD.Exif)
    secrets = {0xFDE8: "ADOBE-OWNER", 0xFDE9: "ADOBE-SERIAL", 0xFDEA: "ADOBE-LENS"}
    secrets |= {0xA420: "UNIQUE-ID", 0xA430: "CAM-OWNER", 0xA435: "LENS-SERIAL"}
    sub.update(secrets)
    sub[0xA434] = "KEPT-LENS-MODEL"  # the control: a kept tag next to them survives
    data = exif_to_keep(source, METADATA_GROUPS)
    assert data is not None and b"KEPT-LENS-MODEL" in data
    for marker in (*secrets.values(), "HOST-MARKER", "BODY-123"):
        assert marker.encode() not in data, marker


def test_a_second_exif_segment_and_its_thumbnail_are_not_copied() -> None:
    """Pillow appends a second APP1 Exif segment to the first; whatever it holds (here
    another IFD1 thumbnail) is never reached by an allowlist built from scratch."""
    first = _exif_with_thumbnail()
    second = first.replace(b"THUMBNAIL-OF-THE", b"SECOND-THUMBNAIL")
    jpeg = images.encoded(images.upright(16, 16), "JPEG", exif=first)
    segment = b"\xff\xe1" + struct.pack(">H", len(second) + 2) + second
    jpeg = jpeg[:2] + segment + jpeg[2:]  # the first Exif segment the reader sees
    with Image.open(io.BytesIO(jpeg)) as im:
        assert b"SECOND-THUMBNAIL" in im.info["exif"]  # the control: it was read
        data = exif_to_keep(im.getexif(), METADATA_GROUPS)
    assert data is not None and b"ThumbCam" in data
    assert b"THUMBNAIL" not in data and b"\xff\xd8" not in data
