"""Metadata smuggled where a filter might not look, through the real engine, read back by
exiftool: IPTC and EXIF in PNG text chunks (ImageMagick's "Raw profile type ..."), a
UTF-16 XMP packet, Google's extended XMP, GPS only in XMP, XMP inside EXIF.

Every rule keeps everything but ``gps`` (``[exif, xmp, copyright, datetime, camera]``):
no location, serial, owner, ID, host name, thumbnail or comment may come out.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import images
import pytest
from PIL import Image, PngImagePlugin

FORMATS = ("jpeg", "png", "webp", "avif", "tiff")
KEEP = ["exif", "xmp", "copyright", "datetime", "camera"]
XMP_NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    'xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"'
)


def xmp(body: str, attrs: str = "") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" {XMP_NS} {attrs}>{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


CREATOR = "<dc:creator><rdf:Seq><rdf:li>Kept Creator</rdf:li></rdf:Seq></dc:creator>"
GPS = 'exif:GPSLatitude="48,51.5N" exif:GPSLongitude="2,17.6E"'


def iim() -> bytes:
    def record(dataset: int, value: bytes) -> bytes:
        return bytes([0x1C, 2, dataset]) + struct.pack(">H", len(value)) + value

    data = record(80, b"S-IptcByline") + record(90, b"S-IptcCity")
    return b"8BIM\x04\x04\0\0" + struct.pack(">I", len(data)) + data


def raw_profile(kind: str, data: bytes) -> str:
    """ImageMagick's PNG text encoding of a profile: name, length, hex lines."""
    hexed = data.hex()
    lines = "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72))
    return f"\n{kind}\n{len(data):8d}\n{lines}\n"


def png_with_text_profiles(path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "KeptMake"
    exif[0x013C] = "S-HostComputer"
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 30.0)})
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type iptc", raw_profile("iptc", iim()), zip=True)
    info.add_text("Raw profile type exif", raw_profile("exif", b"Exif\0\0" + exif.tobytes()[6:]))
    info.add_text("Comment", "S-PngComment")
    info.add_itxt("XML:com.adobe.xmp", xmp(CREATOR, GPS))
    images.upright(64, 48).save(path, "PNG", pnginfo=info)


def jpeg_with_utf16_and_extended_xmp(path: Path) -> None:
    """A UTF-16 main packet pointing at an extended packet (GPS, a serial) that follows
    in extension segments, as Google's camera apps write them."""
    extended = xmp("", GPS + ' aux:SerialNumber="S-ExtSerial"').encode()
    guid = hashlib.md5(extended).hexdigest().upper().encode()
    main = xmp(CREATOR, f'xmpNote:HasExtendedXMP="{guid.decode()}"').encode("utf-16")
    data = images.encoded(images.upright(64, 48), "JPEG", xmp=main)
    payload = b"http://ns.adobe.com/xmp/extension/\0" + guid + struct.pack(">II", len(extended), 0)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + len(extended) + 2)
    path.write_bytes(data[:2] + segment + payload + extended + data[2:])


def jpeg_with_xmp_in_exif(path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "KeptMake"
    exif[0x02BC] = xmp(CREATOR, GPS).encode()  # XMLPacket inside EXIF IFD0
    images.upright(64, 48).save(path, "JPEG", exif=exif.tobytes())


SOURCES = {
    "text-profiles.png": png_with_text_profiles,
    "extended.jpg": jpeg_with_utf16_and_extended_xmp,
    "xmp-in-exif.jpg": jpeg_with_xmp_in_exif,
}


def exiftool_all(*paths: Path) -> dict[str, dict]:
    proc = subprocess.run(
        ["exiftool", "-j", "-a", "-u", "-G1", *map(str, paths)],
        capture_output=True,
        timeout=120,
    )
    return {
        Path(t["SourceFile"]).name + "@" + Path(t["SourceFile"]).parent.name: t
        for t in json.loads(proc.stdout)
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("attacks")
    inbox = base / "in"
    inbox.mkdir()
    for name, make in SOURCES.items():
        make(inbox / name)
    rules = "".join(
        f"""
  - name: {fmt}
    pipeline: [{{encode: {fmt}}}]
    keep_metadata: {json.dumps(KEEP)}
    output: {base}/out/{{rule}}/{{stem}}.{{ext}}"""
        for fmt in FORMATS
    )
    (base / "c.yaml").write_text("version: 1\nrules:" + rules + "\n")
    command = [sys.executable, "-m", "amberpicd", "-c", str(base / "c.yaml"), "process"]
    proc = subprocess.run(
        [*command, "--json", str(inbox)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows and all(r["status"] == "done" for r in rows), (rows, proc.stderr)
    return {
        f"{Path(r['source']).name}->{Path(o).parent.name}": Path(o)
        for r in rows
        for o in r["outputs"]
    }


def test_the_sources_carry_the_smuggled_metadata(tmp_path: Path) -> None:
    """Control: exiftool does find the IPTC, GPS, serial and comment in the sources."""
    for name, make in SOURCES.items():
        make(tmp_path / name)
    found = json.dumps(exiftool_all(*sorted(tmp_path.iterdir())))
    for marker in ("S-IptcByline", "S-PngComment", "GPSLatitude", "S-ExtSerial", "HasExtendedXMP"):
        assert marker in found, marker


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", SOURCES)
def test_nothing_smuggled_comes_out(outputs, source: str, fmt: str) -> None:
    path = outputs[f"{source}->{fmt}"]
    (tags,) = exiftool_all(path).values()
    text = json.dumps(tags)
    for marker in ("S-", "GPS", "IPTC", "Serial", "ExtendedXMP", "Comment", "HostComputer"):
        assert marker not in text, (marker, tags)
    assert "Warning" not in text, tags  # e.g. "XMP character encoding error"
    raw = path.read_bytes()
    for secret in (b"S-IptcByline", b"S-IptcCity", b"S-HostComputer", b"S-PngComment"):
        assert secret not in raw, secret
    assert b"S-ExtSerial" not in raw and b"48,51" not in raw and b"8BIM" not in raw
    # What is kept still comes through, filtered: the main packet's creator (re-encoded
    # from UTF-16) and the raw-profile EXIF's Make. XMP inside EXIF is never read.
    creator = None if source == "xmp-in-exif.jpg" else "Kept Creator"
    assert tags.get("XMP-dc:Creator") == creator
    if source != "extended.jpg":
        assert tags.get("IFD0:Make") == "KeptMake"
