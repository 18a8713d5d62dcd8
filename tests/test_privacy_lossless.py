"""The lossless paths (``optimize``, ``min_saving``'s fallback) write the SOURCE's bytes
with metadata spliced in, not a fresh encode: hostile review of what they let through.

Sources are real files (tests/metasource.py, written by exiftool; hand-made JPEG
segments exiftool reads); exiftool and the raw bytes are the judges. Colour: a
wide-gamut source rewritten without its profile must still look the same, or the
lossless path must not be taken.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import iccprofiles
import images
import metasource
import pytest
from PIL import Image
from test_privacy_colour import mean_error, picture, srgb_view
from test_privacy_groups import check

from amberpicd.errors import EncodeError
from amberpicd.imaging.compress import encode_output
from amberpicd.imaging.optimize import rewrite
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode
from amberpicd.ops.optimize import Optimize

SRC = Path("hostile.jpg")
POLICIES = {
    "none": (),
    "gps": ("gps",),
    "icc": ("icc",),
    "all-but-gps": ("exif", "xmp", "copyright", "datetime", "camera"),
}
# The re-encode (TIFF) never saves 99 %: min_saving always falls back to the source.
PATHS = {"optimize": "optimize", "min_saving": "{encode: {format: tiff, min_saving: '99%'}}"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("lossless")
    inbox, kept = base / "in", base / "sources"
    inbox.mkdir()
    kept.mkdir()
    for name in ("camera.jpg", "camera-png.png"):
        (kept / name).write_bytes(metasource.make_source(inbox / name).read_bytes())
    rules = [
        f"""
  - name: {label}--{path}
    pipeline: [{step}]
    keep_metadata: {json.dumps(list(groups))}
    output: {base}/out/{{rule}}/{{stem}}.{{ext}}"""
        for label, groups in POLICIES.items()
        for path, step in PATHS.items()
    ]
    config = base / "config.yaml"
    config.write_text("version: 1\nrules:" + "".join(rules) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json", str(inbox)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}, proc.stderr
    outputs = [Path(p) for r in rows for p in r["outputs"]]
    assert len(outputs) == 2 * len(POLICIES) * len(PATHS)
    tags = metasource.read_tags(*kept.iterdir(), *outputs)
    return {"kept": kept, "outputs": outputs, "tags": tags}


def test_lossless_paths_keep_exactly_the_groups_tags(run) -> None:
    problems = []
    for out in run["outputs"]:
        groups = POLICIES[out.parent.name.split("--")[0]]
        source = run["kept"] / ("camera-png.png" if out.suffix == ".png" else "camera.jpg")
        assert out.suffix == source.suffix, out  # the source itself was kept, rewritten
        found = check(run["tags"][out], out.read_bytes(), run["tags"][source], groups, "jpeg")
        problems += [f"{out.parent.name}/{out.name}: {p}" for p in found]
    assert problems == []


# --- hand-made JPEG segments the rewrite must not carry ---


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _tiny_jpeg(**options) -> bytes:
    """A 16x16 JPEG with optimised Huffman tables: mozjpeg's progressive rewrite of it is
    larger, so the rewrite keeps the source's own stream (metadata stripped)."""
    return images.encoded(Image.effect_noise((16, 16), 60).convert("RGB"), "JPEG", quality=90,
                          optimize=True, **options)  # fmt: skip


def hostile_jpeg() -> bytes:
    """A JPEG with a comment after its scan, a JFIF header carrying a thumbnail, a JFXX
    thumbnail and a trailer after EOI: all small, so that the source's own stream beats
    mozjpeg's (which adds about 45 bytes to a 16x16 picture) and is the one kept."""
    data = _tiny_jpeg()
    assert data[2:4] == b"\xff\xe0"  # Pillow's JFIF APP0 first
    jfif_end = 4 + struct.unpack(">H", data[4:6])[0]
    jfif = b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x01\x01JTx"  # a 1x1 RGB thumbnail
    jfxx = b"JFXX\x00\x13\x01\x01XTx"  # the same, as a JFXX extension
    head = data[:2] + _segment(0xE0, jfif) + _segment(0xE0, jfxx) + data[jfif_end:]
    assert head.endswith(b"\xff\xd9")
    return head[:-2] + _segment(0xFE, b"S-Late") + b"\xff\xd9" + b"S-Trail"


def exiftool(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "probe.jpg"
    path.write_bytes(data)
    out = subprocess.run(["exiftool", "-j", "-a", "-u", "-G1", str(path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout  # fmt: skip
    return json.loads(out)[0]


@pytest.mark.parametrize("groups", [(), ("exif", "xmp", "copyright", "datetime", "camera")])
def test_jpeg_rewrite_drops_late_segments_thumbnails_and_trailer(tmp_path: Path, groups) -> None:
    source = hostile_jpeg()
    # Control: exiftool sees the thumbnails (it stops reading at the first scan); the
    # bytes hold the rest.
    seen = exiftool(source, tmp_path)
    assert "JFXX:ThumbnailTIFF" in seen and "JFIF:ThumbnailTIFF" in seen
    for secret in (b"S-Late", b"S-Trail", b"JTx", b"XTx"):
        assert secret in source
    with Image.open(io.BytesIO(source)) as im:
        pic = Picture([im.convert("RGB")], source_format="jpeg", exif=im.getexif())
        before = im.convert("RGB").tobytes()
    for spec in (Optimize(), Encode(format="tiff", min_saving=0.99)):
        out = encode_output(pic, spec, groups, SRC, source)
        assert out.note and "losslessly" in out.note
        for secret in (b"S-Late", b"S-Trail", b"JTx", b"XTx", b"JFXX"):
            assert secret not in out.data, secret
        seen = exiftool(out.data, tmp_path)
        assert not [k for k in seen if "Thumbnail" in k or k == "File:Comment"], seen
        assert "ExifTool:Warning" not in seen, seen
        with Image.open(io.BytesIO(out.data)) as im:
            assert im.convert("RGB").tobytes() == before  # still lossless


def test_jpeg_rewrite_keeps_the_adobe_colour_transform() -> None:
    """APP14 "Adobe" says how to read the components (inverted CMYK): colour, not
    metadata. Without it a CMYK JPEG comes out as its negative."""
    cmyk = Image.effect_noise((16, 16), 60).convert("RGB").convert("CMYK")
    source = images.encoded(cmyk, "JPEG", quality=90)
    out = rewrite(source, "jpeg", {})
    with Image.open(io.BytesIO(source)) as a, Image.open(io.BytesIO(out)) as b:
        assert a.mode == b.mode == "CMYK" and a.tobytes() == b.tobytes()
        assert a.info.get("adobe") is not None and b.info.get("adobe") == a.info["adobe"]


# --- colour: a wide-gamut source without its profile ---

PROFILES = {"adobe": iccprofiles.adobe_rgb(), "p3": iccprofiles.display_p3()}


def _wide(fmt: str, icc: bytes) -> bytes:
    if fmt == "jpeg":
        return images.encoded(picture(), "JPEG", quality=95, icc_profile=icc)
    return images.encoded(picture(), "PNG", icc_profile=icc, compress_level=1)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize("profile", PROFILES)
def test_lossless_paths_without_icc_keep_the_colours(fmt: str, profile: str) -> None:
    icc = PROFILES[profile]
    source = _wide(fmt, icc)
    with Image.open(io.BytesIO(source)) as im:
        pic = Picture([im.convert("RGB")], source_format=fmt, icc=icc, exif=im.getexif())
        right = srgb_view(im, icc)
    # min_saving: the source cannot stand in without its profile, so the re-encode does.
    for groups in [("gps",), ()]:
        out = encode_output(pic, Encode(format=fmt, quality=100, min_saving=0.99), groups,
                            SRC, source)  # fmt: skip
        with Image.open(io.BytesIO(out.data)) as im:
            assert not im.info.get("icc_profile")
            assert mean_error(srgb_view(im, None), right) <= 3
        # optimize cannot change pixels: it refuses, naming the file and the reason.
        with pytest.raises(EncodeError, match=r"hostile\.jpg: .*optimize: .*profile.*icc"):
            encode_output(pic, Optimize(), groups, SRC, source)
    # With icc kept, the profile goes along and the pixels are the source's.
    for spec in (Optimize(), Encode(format=fmt, quality=100, min_saving=0.99)):
        out = encode_output(pic, spec, ("icc",), SRC, source)
        with Image.open(io.BytesIO(out.data)) as im:
            assert im.info.get("icc_profile") == icc
            assert mean_error(srgb_view(im, icc), right) <= 1


def test_an_srgb_profile_may_be_dropped_by_the_lossless_path() -> None:
    """Control for the refusal above: an sRGB-tagged source looks the same untagged."""
    from amberpicd.ops.to_srgb import srgb_icc

    source = _wide("jpeg", srgb_icc())
    with Image.open(io.BytesIO(source)) as im:
        pic = Picture([im.convert("RGB")], source_format="jpeg", icc=srgb_icc())
    out = encode_output(pic, Optimize(), (), SRC, source)
    assert b"ICC_PROFILE" not in out.data and out.note


def _chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def test_png_rewrite_keeps_only_well_formed_rendering_chunks() -> None:
    """A rendering chunk (kept: it is how to show the pixels) has a fixed size; one that
    is longer carries something else, and so does a private "critical" chunk."""
    plain = images.encoded(Image.effect_noise((16, 16), 60).convert("RGB"), "PNG")
    planted = (
        _chunk(b"cICP", b"\x01\x0d\x00\x01" + b"S-InCicp")
        + _chunk(b"gAMA", struct.pack(">I", 45455) + b"S-InGama")
        + _chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))  # well formed: kept
        + _chunk(b"SeCr", b"S-Critical")
    )
    source = plain[:33] + planted + plain[33:]
    with Image.open(io.BytesIO(source)) as im:
        before = im.convert("RGB").tobytes()
    for secret in (b"S-InCicp", b"S-InGama", b"S-Critical"):
        assert secret in source
    out = rewrite(source, "png", {})
    for secret in (b"S-InCicp", b"S-InGama", b"S-Critical", b"SeCr"):
        assert secret not in out, secret
    assert b"pHYs" in out  # control: a well-formed rendering chunk stays
    with Image.open(io.BytesIO(out)) as im:
        assert im.convert("RGB").tobytes() == before


# --- icc: the profile's own tags ---


def _identifying_profile() -> bytes:
    """Adobe RGB with what display calibration leaves in a profile: make and model with
    the serial (Apple's ``mmod``), a device model description, a DisplayCAL-style
    ``meta`` dictionary, a video card table and a private tag."""
    mmod = b"mmod\0\0\0\0" + struct.pack(">IIII", 0x610, 0xA050, 0x5E121E7, 0) + b"S-MmodSerial"
    meta = b"dict\0\0\0\0" + b"EDID_serial=S-EdidSerial"
    return iccprofiles.profile(
        "Adobe RGB (1998) test",
        iccprofiles.ADOBE_RGB,
        iccprofiles._gamma(563 / 256),
        extra=(
            (b"mmod", mmod),
            (b"dmdd", iccprofiles._desc("S-DisplayOwnerMacBook")),
            (b"meta", meta),
            (b"vcgt", b"vcgt\0\0\0\0S-Vcgt"),
            (b"zPrv", b"text\0\0\0\0S-PrivateTag\0"),
        ),
    )


IDENTIFYING = (b"S-MmodSerial", b"S-DisplayOwnerMacBook", b"S-EdidSerial", b"S-Vcgt", b"S-Priv")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_kept_icc_profile_carries_only_colour_tags(tmp_path: Path, fmt: str) -> None:
    icc = _identifying_profile()
    source = images.encoded(picture(), "PNG", icc_profile=icc)
    with Image.open(io.BytesIO(source)) as im:
        pic = Picture([im.convert("RGB")], source_format="png", icc=icc)
        right = srgb_view(im, icc)
    assert all(secret in icc for secret in IDENTIFYING)  # control
    specs = [Encode(format=fmt, quality=95)]
    if fmt == "png":
        specs += [Optimize(), Encode(format="png", min_saving=0.99), Encode(format="auto")]
    for spec in specs:
        out = encode_output(pic, spec, ("icc",), Path("screen.png"), source).data
        for secret in IDENTIFYING:
            assert secret not in out, (spec, secret)
        probe = tmp_path / f"out.{fmt}"
        probe.write_bytes(out)
        argv = ["exiftool", "-j", "-a", "-u", "-G1", "-ICC_Profile:all", str(probe)]
        seen = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
        tags = json.loads(seen)[0]
        assert "ICC-header:ProfileDescription" in tags or "ICC_Profile:ProfileDescription" in tags
        assert not [k for k in tags if "MakeAndModel" in k or "DeviceModelDesc" in k], tags
        with Image.open(io.BytesIO(out)) as im:
            carried = im.info.get("icc_profile")
            assert carried, spec  # the profile is kept, and still renders right
            assert mean_error(srgb_view(im, carried), right) <= 3


def test_a_profile_with_only_colour_tags_is_kept_byte_for_byte() -> None:
    from amberpicd.imaging.icc import icc_to_keep

    icc = iccprofiles.adobe_rgb()
    assert icc_to_keep(icc) == icc
    assert icc_to_keep(b"not a profile at all, " * 10) is None
