"""What exif_to_keep / xmp_to_keep / keep_icc let through, group by group."""

from __future__ import annotations

import io
import struct
from itertools import combinations

import images
import pytest
from PIL import Image
from PIL.ExifTags import IFD, Base

from amberpicd.config.schema import METADATA_GROUPS
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
