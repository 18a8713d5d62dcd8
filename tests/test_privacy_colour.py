"""Colours stay right whether or not the profile is kept (issue 11).

Wide-gamut sources (Adobe RGB (1998) and Display P3, tests/iccprofiles.py) go through
every output format with ``keep_metadata: [icc]`` and with ``[gps]`` (no profile). Each
output, read as a viewer would (through its profile with LittleCMS, or as sRGB when it
has none), must match LittleCMS's sRGB rendering of the source: mean error <= 3 on
0-255 (GIF, a 256-colour palette, <= 6). A control shows the same measure fails for
pixels whose profile is ignored.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import iccprofiles
import images
import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat

from amberpicd.imaging.encode import encode
from amberpicd.imaging.gifmeta import gif_metadata
from amberpicd.imaging.picture import Picture
from amberpicd.ops.encode import Encode

FORMATS = ("jpeg", "png", "webp", "avif", "tiff", "gif")
KEEP = {"icc": ["icc"], "noicc": ["gps"]}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
PROFILES = {"adobe": iccprofiles.adobe_rgb(), "p3": iccprofiles.display_p3()}


def picture() -> Image.Image:
    """Smooth, saturated colours (lossy codecs stay close) and a gray ramp."""
    im = images.upright(256, 192)
    return im.resize((128, 96)).resize((256, 192), Image.Resampling.BICUBIC)


def srgb_view(im: Image.Image, icc: bytes | None) -> Image.Image:
    """What a colour-managed viewer shows: ``im`` through ``icc`` to sRGB (LittleCMS)."""
    im = im.convert("RGB")
    if not icc:
        return im
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.profileToProfile(im, source, SRGB, outputMode="RGB")


def mean_error(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def gif_with_icc(im: Image.Image, icc: bytes) -> bytes:
    """A GIF whose ICC profile is an ICCRGBG1 application extension (Pillow writes
    none): spliced in right after the global colour table."""
    data = images.encoded(im.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")
    flags = data[10]
    at = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    blocks = b"".join(
        bytes([len(c)]) + c for c in (icc[i : i + 255] for i in range(0, len(icc), 255))
    )
    ext = b"\x21\xff\x0bICCRGBG1012" + blocks + b"\0"
    return data[:at] + ext + data[at:]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("colour")
    inbox = base / "in"
    inbox.mkdir()
    sources: dict[str, tuple[bytes, bytes]] = {}  # name -> (file bytes, icc)
    for label, icc in PROFILES.items():
        sources[f"{label}-jpeg.jpg"] = (
            images.encoded(picture(), "JPEG", quality=95, icc_profile=icc),
            icc,
        )
        sources[f"{label}-png.png"] = (images.encoded(picture(), "PNG", icc_profile=icc), icc)
    sources["adobe-gif.gif"] = (gif_with_icc(picture(), PROFILES["adobe"]), PROFILES["adobe"])
    for name, (data, _) in sources.items():
        (inbox / name).write_bytes(data)
    rules = [
        f"""
  - name: {fmt}-{label}
    pipeline: [{{encode: {fmt}}}]
    keep_metadata: {json.dumps(keep)}
    output: {base}/out/{{rule}}/{{stem}}.{{ext}}"""
        for fmt in FORMATS
        for label, keep in KEEP.items()
    ]
    config = base / "config.yaml"
    config.write_text("version: 1\nrules:" + "".join(rules) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json", str(inbox)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows and all(r["status"] == "done" for r in rows), (rows, proc.stderr)
    outputs = {}
    for row in rows:
        for out in row["outputs"]:
            outputs[(Path(out).parent.name, Path(out).stem)] = Path(out)
    return {"sources": sources, "outputs": outputs}


def reference(data: bytes, icc: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return srgb_view(im, icc)


@pytest.mark.parametrize("keep", KEEP)
@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_gamut_looks_the_same_in_every_format(run, fmt: str, keep: str) -> None:
    limit = 6 if fmt == "gif" else 3
    for name, (data, icc) in run["sources"].items():
        path = run["outputs"][(f"{fmt}-{keep}", Path(name).stem)]
        with Image.open(path) as out:
            carried = out.info.get("icc_profile")
            seen = srgb_view(out, carried)
        if keep == "noicc" or fmt == "gif":
            assert not carried, f"{path.name}: a profile was written"
        else:
            assert carried == icc, f"{path.name}: the source profile was not kept"
        error = mean_error(seen, reference(data, icc))
        assert error <= limit, f"{name} -> {fmt} ({keep}): mean error {error:.2f}"


def test_ignoring_the_profile_fails_the_same_measure(run) -> None:
    """Control: the source pixels read as sRGB (what dropping the profile without
    converting did) are far from the right colours."""
    for name, (data, icc) in run["sources"].items():
        with Image.open(io.BytesIO(data)) as im:
            error = mean_error(im.convert("RGB"), reference(data, icc))
        assert error > 6, f"{name}: {error:.2f}"


def test_gif_icc_extension_is_read() -> None:
    icc = PROFILES["p3"]
    data = gif_with_icc(picture(), icc)
    assert gif_metadata(data) == (icc, None)
    assert gif_metadata(images.encoded(picture().convert("P"), "GIF")) == (None, None)
    assert gif_metadata(data[:200]) == (None, None)  # truncated inside the profile


def test_gif_xmp_extension_is_read() -> None:
    xmp = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    xmp += b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/><?xpacket end="w"?>'
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\0"
    data = images.encoded(picture().convert("P"), "GIF")
    ext = b"\x21\xff\x0bXMP DataXMP" + xmp + trailer
    gif = data[:-1] + ext + data[-1:]  # before the trailer byte
    assert gif_metadata(gif) == (None, xmp)
    assert struct.unpack("B", gif[-1:])[0] == 0x3B


@pytest.mark.parametrize("fmt", ["jpeg", "gif"])
def test_a_profile_littlecms_cannot_use_is_dropped_not_fatal(fmt: str) -> None:
    """A profile that parses but cannot build a transform (no colorants): the pixels are
    written as they are, untagged, as a viewer ignoring the profile would show them."""
    broken = iccprofiles.profile("broken", {}, iccprofiles._gamma(2.2))
    pixels = picture()
    source = Picture(frames=[pixels], source_format="png", icc=broken)
    data = encode(source, Encode(format=fmt), ("gps",), Path("broken.png"))
    with Image.open(io.BytesIO(data)) as out:
        assert "icc_profile" not in out.info
        assert mean_error(out.convert("RGB"), pixels) <= 6
