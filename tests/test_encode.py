"""encode(): real encodes of every format, read back with Pillow and as raw bytes."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import images
import pytest
from PIL import Image, ImageCms, PngImagePlugin
from PIL.ExifTags import IFD, Base
from PIL.JpegImagePlugin import get_sampling
from pydantic import ValidationError

import amberpicd.imaging.encode as encoder
from amberpicd.errors import EncodeError
from amberpicd.imaging.encode import default_spec, encode
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode

FORMATS = ("jpeg", "png", "webp", "avif", "tiff", "gif")
PILLOW = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "avif": "AVIF",
    "tiff": "TIFF",
    "gif": "GIF",
}
SRC = Path("IMG_0001.jpg")

GPS_MARKER = "GPS-DATUM-MARKER"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="XMP-TOOL-MARKER"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
# Strings of the source's metadata, searched for in the raw output bytes.
RAW = {
    "camera": (b"TestMake", b"TestModel", b"TestLens"),
    "copyright": (b"Test Artist", b"(c) Test Owner"),
    "datetime": (b"2024:05:06 07:08:09",),
    "gps": (GPS_MARKER.encode(),),
    "xmp": (b"http://ns.adobe.com/xap", b"XMP-TOOL-MARKER"),
    "never": (b"JPEG-COMMENT-MARKER", b"MAKERNOTE-MARKER"),
}


# Made once: a profile's header holds its creation time, so two calls can differ.
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def read(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def still(mode: str = "RGB", size: tuple[int, int] = (64, 48), **kw: object) -> Picture:
    return Picture(frames=[images.upright(*size, mode=mode)], **kw)  # type: ignore[arg-type]


def run(picture: Picture, fmt: str, groups: tuple[str, ...] = ("icc",), **spec: object) -> bytes:
    return encode(picture, Encode(format=fmt, **spec), groups, SRC)  # type: ignore[arg-type]


# --- the dirty source: a JPEG with everything a camera (and an editor) leaves behind ---


@pytest.fixture(scope="module")
def dirty_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exif = images.exif_block(orientation=6, gps=True)
    exif.get_ifd(IFD.GPSInfo)[0x12] = GPS_MARKER  # GPSMapDatum
    sub = exif.get_ifd(IFD.Exif)
    sub[Base.MakerNote] = b"MAKERNOTE-MARKER"
    sub[Base.LensModel] = "TestLens"
    path = tmp_path_factory.mktemp("src") / "dirty.jpg"
    images.stored(images.upright(96, 64), 6).save(
        path,
        "JPEG",
        quality=90,
        exif=exif.tobytes(),
        icc_profile=SRGB_ICC,
        comment=b"JPEG-COMMENT-MARKER",
        xmp=XMP,
    )
    return path


def dirty_picture(path: Path) -> Picture:
    """A Picture whose frame still carries everything in ``info`` (comment, EXIF, XMP,
    ICC): the worst case, to prove the encoder writes only what the policy keeps."""
    im = Image.open(path)
    im.load()
    assert {"comment", "exif", "xmp", "icc_profile"} <= set(im.info)
    return Picture(
        frames=[im],
        source_format="jpeg",
        icc=im.info["icc_profile"],
        exif=im.getexif(),
        xmp=im.info["xmp"],
        orientation=im.getexif()[Base.Orientation],
    )


def present(data: bytes, *groups: str) -> set[str]:
    return {g for g in RAW if any(s in data for s in RAW[g]) and g in groups}


def metadata_tags(out: Image.Image) -> set[int]:
    """EXIF tags read back, minus the ones a TIFF needs to describe its pixels."""
    structure = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 296, 282, 283, 317, 338}
    return set(out.getexif()) - structure - {Base.InterColorProfile}


# --- formats, modes, pixels ---


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_back(fmt: str) -> None:
    data = run(still(size=(80, 60)), fmt)
    out = read(data)
    assert out.format == PILLOW[fmt]
    assert out.size == (80, 60)
    assert out.mode == ("P" if fmt == "gif" else "RGB")
    assert images.corner_is_marker(out)


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        *[("jpeg", "jpeg"), ("png", "png"), ("webp", "webp"), ("avif", "avif"), ("gif", "gif")],
        *[("TIFF", "tiff"), ("tif", "tiff"), ("jpg", "jpeg"), ("mpo", "jpeg")],
        *[("heif", "jpeg"), ("bmp", "jpeg"), ("", "jpeg")],
    ],
)
def test_default_spec_keeps_writable_source_formats(source: str, fmt: str) -> None:
    spec = default_spec(source)
    assert spec.format == fmt
    assert spec.quality is None and spec.max_bytes is None


def test_rgba_to_jpeg_flattens_onto_the_background() -> None:
    picture = still("RGBA")  # right half fully transparent
    white = read(run(picture, "jpeg"))
    assert white.mode == "RGB"
    assert all(c >= 250 for c in white.getpixel((56, 24)))
    assert images.corner_is_marker(white)
    black = read(run(picture, "jpeg", background="black"))
    assert all(c <= 5 for c in black.getpixel((56, 24)))


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "tiff", "gif"])
def test_alpha_formats_keep_transparency(fmt: str) -> None:
    out = read(run(still("RGBA"), fmt)).convert("RGBA")
    assert out.getpixel((56, 24))[3] == 0
    assert out.getpixel((2, 2))[3] == 255


@pytest.mark.parametrize(
    ("mode", "fmt", "expected"),
    [
        ("L", "jpeg", "L"),
        ("LA", "jpeg", "L"),
        ("L", "webp", "RGB"),
        ("LA", "png", "LA"),
        ("1", "webp", "RGB"),
        ("CMYK", "jpeg", "RGB"),
        ("CMYK", "png", "RGB"),
        ("CMYK", "tiff", "CMYK"),
        ("P", "png", "P"),
        ("P", "jpeg", "RGB"),
    ],
)
def test_modes_become_what_the_format_takes(mode: str, fmt: str, expected: str) -> None:
    assert read(run(still(mode), fmt)).mode == expected


def test_palette_transparency_survives_png_and_becomes_alpha_in_webp() -> None:
    im = images.upright(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = im.getpixel((56, 24))
    picture = Picture(frames=[im])
    png = read(run(picture, "png"))
    assert png.mode == "P" and "transparency" in png.info
    assert png.convert("RGBA").getpixel((56, 24))[3] == 0
    webp = read(run(picture, "webp"))
    assert webp.mode == "RGBA" and webp.getpixel((56, 24))[3] == 0


def test_sixteen_bit_gray_is_scaled_to_eight_bit_not_clipped() -> None:
    picture = Picture(frames=[Image.new("I;16", (16, 16), 40000)])
    assert read(run(picture, "jpeg")).getpixel((8, 8)) == pytest.approx(40000 / 256, abs=2)
    png = read(run(picture, "png"))
    assert png.mode.startswith("I") and png.getpixel((8, 8)) == 40000  # PNG keeps 16 bits


def test_pixels_are_written_upright_whatever_the_orientation() -> None:
    stored = images.stored(images.upright(64, 48), 6)
    out = read(run(Picture(frames=[stored], orientation=6), "png"))
    assert out.size == (64, 48)
    assert images.corner_is_marker(out)


def test_jpeg_defaults_progressive_and_chroma_by_quality() -> None:
    picture = still(size=(64, 48))
    default = read(run(picture, "jpeg"))
    assert default.info.get("progressive") and get_sampling(default) == 2  # 4:2:0
    high = read(run(picture, "jpeg", quality=95, progressive=False))
    assert not high.info.get("progressive") and get_sampling(high) == 0  # 4:4:4
    assert run(picture, "jpeg") == run(picture, "jpeg", quality=82)


def test_effort_trades_size_for_time() -> None:
    picture = still(size=(160, 120))
    assert len(run(picture, "png", effort=0)) > len(run(picture, "png"))
    assert len(run(picture, "webp", effort=0)) != len(run(picture, "webp"))


# --- animation ---


@pytest.fixture(scope="module")
def animation(tmp_path_factory: pytest.TempPathFactory) -> Picture:
    path = images.animated(tmp_path_factory.mktemp("anim") / "a.gif", frames=3)
    frames = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(im.convert("RGBA"))
    return Picture(frames=frames, source_format="gif", durations=[100, 200, 300], loop=0)


@pytest.mark.parametrize("fmt", ["gif", "webp", "png", "avif"])
def test_animation_keeps_frames_and_durations(animation: Picture, fmt: str) -> None:
    out = read(run(animation, fmt))
    assert out.format == PILLOW[fmt]
    assert out.n_frames == 3
    durations = []
    for i in range(3):
        out.seek(i)
        out.load()
        durations.append(round(out.info["duration"]))
    assert durations == [100, 200, 300]


@pytest.mark.parametrize("fmt", ["gif", "webp", "png", "avif"])
def test_animation_metadata_follows_the_policy(animation: Picture, fmt: str) -> None:
    exif = images.exif_block(gps=True)
    picture = animation.with_(exif=exif, xmp=XMP, icc=SRGB_ICC)
    nothing = run(picture, fmt, ())
    assert present(nothing, *RAW) == set() and b"acsp" not in nothing
    data = run(picture, fmt, ("gps", "copyright", "xmp"))
    out = read(data)
    assert out.n_frames == 3
    if fmt == "gif":  # no EXIF in a GIF: the kept XMP only, in its application extension
        assert present(data, *RAW) == {"xmp"}
        assert b"XMP DataXMP" in data and b"acsp" not in data
        return
    assert present(data, *RAW) == {"copyright", "xmp"}  # GPS kept, marker not in this EXIF
    assert out.getexif().get_ifd(IFD.GPSInfo)[1] == "N"
    assert out.getexif()[Base.Artist] == "Test Artist"
    if fmt == "webp":
        assert b"Exif\x00\x00" not in data  # bare TIFF data in the EXIF chunk


@pytest.mark.parametrize("fmt", ["jpeg", "tiff"])
def test_still_formats_take_the_first_frame(animation: Picture, fmt: str) -> None:
    out = read(run(animation, fmt))
    assert getattr(out, "n_frames", 1) == 1
    first = animation.frames[0].convert("RGB")
    assert images.corner_is_marker(first) and images.corner_is_marker(out)
    # frame 1 is rotated: its corner is not the marker, so this really is frame 0
    assert not images.corner_is_marker(animation.frames[1])


# --- max_bytes ---


def test_max_bytes_picks_the_highest_quality_that_fits() -> None:
    picture = still(size=(160, 120))
    sizes = {q: len(run(picture, "jpeg", quality=q)) for q in range(1, 83)}
    # A limit where every quality up to q fits and none above does (sizes grow with q).
    target = next(
        q
        for q in range(70, 30, -1)
        if all(sizes[p] <= sizes[q] for p in range(1, q))
        and all(sizes[p] > sizes[q] for p in range(q + 1, 83))
    )
    data = run(picture, "jpeg", max_bytes=sizes[target])
    assert len(data) <= sizes[target]
    assert data == run(picture, "jpeg", quality=target)
    assert sizes[target + 1] > sizes[target]


def test_max_bytes_uses_few_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    save = encoder._save
    monkeypatch.setattr(encoder, "_save", lambda *a: calls.append(a[2]["quality"]) or save(*a))
    picture = still(size=(160, 120))
    smallest = len(run(picture, "webp", quality=1))
    calls.clear()
    assert len(run(picture, "webp", max_bytes=smallest + 200)) <= smallest + 200
    assert 1 < len(calls) <= 8
    calls.clear()
    run(picture, "webp", max_bytes=10_000_000)
    assert calls == [80]  # the default quality fits: one encode


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_max_bytes_result_fits(fmt: str) -> None:
    picture = still(size=(200, 150))
    full = len(run(picture, fmt))
    limit = full * 2 // 3
    data = run(picture, fmt, max_bytes=limit)
    assert len(data) <= limit
    assert read(data).size == (200, 150)


def test_impossible_max_bytes_names_the_smallest_output() -> None:
    picture = still(size=(200, 150))
    smallest = len(run(picture, "jpeg", quality=1))
    with pytest.raises(EncodeError) as err:
        run(picture, "jpeg", max_bytes=300)
    assert smallest < 1000
    assert str(err.value) == (
        "IMG_0001.jpg: encode failed: no quality fits max_bytes 300 B "
        f"(smallest: {smallest} B at quality 1)"
    )


@pytest.mark.parametrize(
    ("fmt", "spec"), [("png", {}), ("gif", {}), ("tiff", {}), ("webp", {"lossless": True})]
)
def test_lossless_over_max_bytes_fails_at_any_quality(fmt: str, spec: dict) -> None:
    noise = Image.effect_noise((200, 150), 80)  # incompressible enough to exceed 1 KB
    picture = Picture(frames=[Image.merge("RGB", (noise, noise.transpose(0), noise))])
    size = len(run(picture, fmt, **spec))
    with pytest.raises(EncodeError, match=r"above max_bytes 1 KB at any quality") as err:
        run(picture, fmt, max_bytes=1000, **spec)
    assert f"lossless {fmt.upper()} output is " in str(err.value)
    assert len(run(picture, fmt, max_bytes=size, **spec)) == size  # exactly at the limit fits


def test_codec_failure_is_an_encode_error() -> None:
    picture = Picture(frames=[Image.new("L", (70000, 1))])  # beyond JPEG's 65500 px
    with pytest.raises(EncodeError, match=r"^IMG_0001\.jpg: encode failed: "):
        run(picture, "jpeg")


def test_lossless_jpeg_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="jpeg cannot be lossless"):
        Encode(format="jpeg", lossless=True)


# --- metadata, per output format, read back by Pillow and as raw bytes ---


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_policy_keeps_only_the_icc_profile(dirty_jpeg: Path, fmt: str) -> None:
    data = run(dirty_picture(dirty_jpeg), fmt, ("icc",))
    assert present(data, *RAW) == set()
    assert b"Exif\x00\x00" not in data
    out = read(data)
    assert metadata_tags(out) == set()
    assert not {"exif", "xmp", "comment", "XML:com.adobe.xmp"} & set(out.info)
    if fmt != "gif":  # GIF cannot carry a profile
        assert out.info["icc_profile"] == SRGB_ICC
    assert images.corner_is_marker(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_policy_keeps_nothing_not_even_icc(dirty_jpeg: Path, fmt: str) -> None:
    data = run(dirty_picture(dirty_jpeg), fmt, ())
    out = read(data)
    assert present(data, *RAW) == set()
    assert "icc_profile" not in out.info and b"acsp" not in data  # acsp: ICC signature


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_gps_group_keeps_gps_only(dirty_jpeg: Path, fmt: str) -> None:
    data = run(dirty_picture(dirty_jpeg), fmt, ("gps",))
    assert present(data, *RAW) == {"gps"}
    out = read(data)
    gps = out.getexif().get_ifd(IFD.GPSInfo)
    assert gps[1] == "N" and gps[0x12] == GPS_MARKER
    assert metadata_tags(out) == {IFD.GPSInfo}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_copyright_group_keeps_artist_and_copyright_only(dirty_jpeg: Path, fmt: str) -> None:
    data = run(dirty_picture(dirty_jpeg), fmt, ("copyright",))
    assert present(data, *RAW) == {"copyright"}
    exif = read(data).getexif()
    assert metadata_tags(read(data)) == {Base.Artist, Base.Copyright}
    assert exif[Base.Artist] == "Test Artist" and exif[Base.Copyright] == "(c) Test Owner"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_exif_group_keeps_camera_and_dates_but_not_gps_or_makernote(
    dirty_jpeg: Path, fmt: str
) -> None:
    data = run(dirty_picture(dirty_jpeg), fmt, ("exif",))
    assert present(data, *RAW) == {"camera", "copyright", "datetime"}
    exif = read(data).getexif()
    assert exif[Base.Make] == "TestMake"
    sub = exif.get_ifd(IFD.Exif)
    assert sub[Base.DateTimeOriginal] == "2024:05:06 07:08:09"
    assert sub[Base.LensModel] == "TestLens"
    assert Base.MakerNote not in sub
    assert exif.get_ifd(IFD.GPSInfo) == {}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_xmp_group_keeps_xmp(dirty_jpeg: Path, fmt: str) -> None:
    data = run(dirty_picture(dirty_jpeg), fmt, ("xmp",))
    assert present(data, *RAW) == {"xmp"}
    assert b"XMP-TOOL-MARKER" in read(data).info["xmp"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_everything_kept_still_never_orientation_comment_or_makernote(
    dirty_jpeg: Path, fmt: str
) -> None:
    groups = ("icc", "copyright", "datetime", "camera", "gps", "exif", "xmp")
    data = run(dirty_picture(dirty_jpeg), fmt, groups)
    assert present(data, "never") == set()
    out = read(data)
    assert out.getexif().get(Base.Orientation, 1) == 1
    assert "comment" not in out.info
    assert out.size == (96, 64) and images.corner_is_marker(out)
    if fmt == "gif":  # GIF has a place for XMP only
        assert present(data, *RAW) == {"xmp"}


def test_tiff_source_tags_do_not_leak_into_a_tiff_output(tmp_path: Path) -> None:
    # Pillow's TIFF writer copies XMP, IPTC and Photoshop blocks from a source TIFF's tags.
    path = tmp_path / "src.tiff"
    tags = {
        Base.Artist: "TIFF-ARTIST-MARKER",
        Base.XMLPacket: b"<x:xmpmeta>TIFF-XMP-MARKER</x:xmpmeta>",
        33723: b"IPTC-MARKER",  # IPTC-NAA
        Base.ImageResources: b"PHOTOSHOP-MARKER",
    }
    images.upright(40, 30).save(path, "TIFF", tiffinfo=tags, compression="tiff_adobe_deflate")
    im = Image.open(path)
    im.load()
    picture = Picture(frames=[im], source_format="tiff", exif=im.getexif())
    data = run(picture, "tiff", ("icc",))
    for marker in (b"TIFF-ARTIST", b"TIFF-XMP", b"IPTC-MARKER", b"PHOTOSHOP-MARKER"):
        assert marker not in data
    data = run(picture, "tiff", ("exif",))
    assert b"TIFF-ARTIST-MARKER" in data
    for marker in (b"TIFF-XMP", b"IPTC-MARKER", b"PHOTOSHOP-MARKER"):
        assert marker not in data


def test_png_text_chunks_do_not_leak(tmp_path: Path) -> None:
    path = tmp_path / "src.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "PNG-TEXT-MARKER")
    info.add_itxt("Author", "PNG-ITXT-MARKER")
    images.upright(40, 30).save(path, "PNG", pnginfo=info)
    im = Image.open(path)
    im.load()
    assert "Comment" in im.info
    for fmt in ("png", "webp", "tiff", "gif"):
        data = run(Picture(frames=[im], source_format="png"), fmt, ("icc", "exif", "xmp"))
        assert b"PNG-TEXT-MARKER" not in data and b"PNG-ITXT-MARKER" not in data


def fake_icc(space: bytes) -> bytes:
    # The encoder reads the header's space; the signature and an empty tag table make it
    # a profile the ICC filter (imaging.icc) reads, and so keeps as it is.
    return b"\x00" * 16 + space + b"\x00" * 16 + b"acsp" + b"\x00" * 88 + b"\x00" * 4


def test_gray_profile_is_dropped_when_the_output_is_rgb() -> None:
    picture = still("L", icc=fake_icc(b"GRAY"))
    assert "icc_profile" not in read(run(picture, "webp")).info  # WebP is always RGB
    assert read(run(picture, "png")).info["icc_profile"] == fake_icc(b"GRAY")


def test_cmyk_tiff_keeps_its_cmyk_profile() -> None:
    picture = still("CMYK", icc=fake_icc(b"CMYK"))
    out = read(run(picture, "tiff"))
    assert out.mode == "CMYK" and out.info["icc_profile"] == fake_icc(b"CMYK")


def test_gif_carries_kept_xmp_that_exiftool_reads(tmp_path: Path, dirty_jpeg: Path) -> None:
    """The XMP application extension is one a reader finds: exiftool reads it back, and the
    GIF still decodes with its pixels; without ``xmp`` kept there is none (control)."""
    data = run(dirty_picture(dirty_jpeg), "gif", ("xmp",))
    path = tmp_path / "x.gif"
    path.write_bytes(data)
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-XMP:all", str(path)], capture_output=True, text=True
    )
    (tags,) = json.loads(out.stdout)
    assert tags.get("XMP-xmp:CreatorTool") == "XMP-TOOL-MARKER", tags
    assert images.corner_is_marker(read(data))
    bare = run(dirty_picture(dirty_jpeg), "gif", ())
    assert b"XMP DataXMP" not in bare and b"XMP-TOOL-MARKER" not in bare
