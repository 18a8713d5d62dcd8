"""``encode: {encoder: ...}``: libjpeg-turbo (Pillow), mozjpeg (libvips) and jpegli
(pyjpegli) through the real codecs; the metadata written is the same whatever the
encoder, names are checked at config load, and ``auto`` leaves the default path alone."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import images
import metasource
import pytest
from PIL import Image, ImageCms
from pydantic import TypeAdapter, ValidationError

from amberpicd.imaging import jpeg
from amberpicd.imaging.encode import encode_as
from amberpicd.imaging.picture import Picture
from amberpicd.imaging.ssimulacra2 import Reference
from amberpicd.ops.encode import Encode
from amberpicd.ops.registry import pipeline_item_type

ALL_GROUPS = ("icc", "copyright", "datetime", "camera", "gps", "exif", "xmp")
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
    b"<dc:creator><rdf:Seq><rdf:li>Test Artist</rdf:li></rdf:Seq></dc:creator>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)
ENCODERS = jpeg.available_encoders()


def step(item: object):
    return TypeAdapter(pipeline_item_type()).validate_python(item)


def picture(mode: str = "RGB") -> Picture:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = images.upright(320, 240).convert(mode)
    exif = Image.Exif()
    exif.load(metasource.pillow_exif())
    return Picture([im], exif=exif, icc=srgb, xmp=XMP, source_format="jpeg")


def metadata_segments(data: bytes) -> list[bytes]:
    """Every APP1-APP15 and comment segment before the first scan, whole."""
    assert data[:2] == b"\xff\xd8"
    pos, out = 2, []
    while data[pos + 1] != 0xDA:
        marker = data[pos + 1]
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xE1 <= marker <= 0xEF or marker == 0xFE:
            out.append(data[pos:end])
        pos = end
    return out


def test_jpegli_is_installed_here():
    # The benchmark and the tests below compare all three: a missing wheel is a failure
    # here, not a silently shorter list.
    assert ENCODERS == ("libjpeg", "mozjpeg", "jpegli")


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("groups", [(), ALL_GROUPS, ("icc",)])
def test_every_encoder_writes_the_same_metadata(encoder: str, groups: tuple[str, ...]):
    pic = picture()
    spec = Encode(format="jpeg", quality=80, encoder=encoder)
    got = encode_as(pic, spec, "jpeg", groups, Path("a.jpg")).data
    want = encode_as(pic, Encode(format="jpeg", quality=80), "jpeg", groups, Path("a.jpg")).data
    assert metadata_segments(got) == metadata_segments(want)
    assert bool(metadata_segments(want)) == bool(groups)  # control: the groups do matter
    with Image.open(io.BytesIO(got)) as out:
        out.load()
        assert (out.format, out.size, out.mode) == ("JPEG", (320, 240), "RGB")


@pytest.mark.parametrize("encoder", ENCODERS)
def test_gray_pictures_and_quality_auto(encoder: str):
    gray = encode_as(picture("L"), Encode(format="jpeg", encoder=encoder), "jpeg", (), Path("g"))
    with Image.open(io.BytesIO(gray.data)) as out:
        assert out.mode == "L"  # jpegli takes RGB only: gray goes through libjpeg
    pic = picture()
    spec = Encode(format="jpeg", quality="auto", target=80, encoder=encoder)
    found = encode_as(pic, spec, "jpeg", (), Path("a.jpg"))
    with Image.open(io.BytesIO(found.data)) as out:
        measured = Reference(pic.image).score(out.convert("RGB"))
    # The score reported is the file's, as a lower bound (lean references): within 0.2.
    assert found.score <= measured <= found.score + 0.2
    assert found.score >= 80


def test_the_encoders_really_differ():
    # Control for the tests above: three encoders, three different bitstreams.
    pic = picture()
    outputs = {
        encode_as(pic, Encode(format="jpeg", quality=80, encoder=e), "jpeg", (), Path("a")).data
        for e in ENCODERS
    }
    assert len(outputs) == len(ENCODERS)


def test_auto_keeps_libjpeg_for_a_fixed_quality():
    # The default path (a fixed-quality JPEG) must not get slower: auto is libjpeg there.
    pic = picture()
    auto = encode_as(pic, Encode(format="jpeg", quality=82), "jpeg", (), Path("a")).data
    turbo = Encode(format="jpeg", quality=82, encoder="libjpeg")
    assert auto == encode_as(pic, turbo, "jpeg", (), Path("a")).data
    assert jpeg.resolve("auto", searching=False) == "libjpeg"
    assert jpeg.resolve("auto", searching=True) == jpeg.AUTO_SEARCH


def test_encoder_names_are_checked_at_load(monkeypatch):
    assert step({"encode": {"format": "jpg", "encoder": "mozjpeg"}}).encoder == "mozjpeg"
    assert step({"encode": {"format": "auto", "encoder": "jpegli"}}).encoder == "jpegli"
    assert step({"encode": "jpeg"}).encoder == "auto"
    for bad, says in (
        ({"format": "jpeg", "encoder": "guetzli"}, "encoder"),
        ({"format": "webp", "encoder": "mozjpeg"}, "encoder is for jpeg"),
    ):
        with pytest.raises(ValidationError, match=says):
            step({"encode": bad})
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyjpegli" else real(name)
    )
    with pytest.raises(ValidationError, match="needs the pyjpegli package"):
        step({"encode": {"format": "jpeg", "encoder": "jpegli"}})
