"""XMP is parsed and rebuilt, never copied: hostile and odd packets (amberpicd/imaging/xmp.py).

Each packet is what a camera, an editor or an attacker might write; the rebuilt packet
is read back with a plain XML parser (and, where it matters, by exiftool).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree

import images
import pytest

from amberpicd.config.schema import METADATA_GROUPS
from amberpicd.imaging.xmp import parse, rebuild

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "xmpNote": "http://ns.adobe.com/xmp/note/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpGImg": "http://ns.adobe.com/xap/1.0/g/img/",
}
ALL_BUT_GPS = ("exif", "xmp", "copyright", "datetime", "camera")


def packet(body: str, attrs: str = "", extra_ns: str = "") -> bytes:
    xmlns = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items() if p not in ("x", "rdf"))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS["rdf"]}">'
        f'<rdf:Description rdf:about="uuid:SECRET-ABOUT" {xmlns} {extra_ns} {attrs}>'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


CREATOR = "<dc:creator><rdf:Seq><rdf:li>Ann Author</rdf:li></rdf:Seq></dc:creator>"


def kept(data: bytes | None) -> set[str]:
    """The properties in a rebuilt packet, as ``prefix:Name``, checked to be valid XML."""
    if data is None:
        return set()
    data.decode("utf-8")  # strict: always UTF-8
    root = ElementTree.fromstring(data)
    prefixes = {uri: p for p, uri in NS.items()}
    names = set()
    for desc in root.iter(f"{{{NS['rdf']}}}Description"):
        for child in desc:
            uri, _, local = child.tag[1:].partition("}")
            names.add(f"{prefixes.get(uri, uri)}:{local}")
    return names


def test_gps_written_only_in_xmp_needs_gps() -> None:
    data = packet(CREATOR, 'exif:GPSLatitude="48,51.5N" exif:GPSLongitude="2,17.6E"')
    assert kept(rebuild(data, ALL_BUT_GPS)) == {"dc:creator"}
    assert kept(rebuild(data, ("gps",))) == {"exif:GPSLatitude", "exif:GPSLongitude"}


def test_a_known_namespace_under_another_prefix_is_still_known() -> None:
    data = packet(
        "<geo:GPSLatitude>48,51.5N</geo:GPSLatitude>", extra_ns=f'xmlns:geo="{NS["exif"]}"'
    )
    assert rebuild(data, ALL_BUT_GPS) is None
    assert kept(rebuild(data, ("gps",))) == {"exif:GPSLatitude"}


def test_location_in_an_unknown_namespace_is_dropped() -> None:
    dji = 'xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"'
    data = packet(CREATOR, 'drone-dji:GpsLatitude="48.85"', extra_ns=dji)
    assert b"48.85" not in (rebuild(data, METADATA_GROUPS) or b"")


def test_serials_owners_ids_thumbnails_never_pass() -> None:
    body = (
        CREATOR
        + "<aux:SerialNumber><rdf:Bag><rdf:li>SECRET-SERIAL</rdf:li></rdf:Bag></aux:SerialNumber>"
        + "<xmpMM:History><rdf:Seq><rdf:li rdf:parseType='Resource'>"
        + "<xmpMM:InstanceID>SECRET-HISTORY</xmpMM:InstanceID></rdf:li></rdf:Seq></xmpMM:History>"
        + "<xmp:Thumbnails><rdf:Alt><rdf:li rdf:parseType='Resource'>"
        + "<xmpGImg:image>U0VDUkVU</xmpGImg:image></rdf:li></rdf:Alt></xmp:Thumbnails>"
    )
    attrs = (
        'aux:OwnerName="SECRET-OWNER" xmpMM:DocumentID="SECRET-DOC" '
        'xmpNote:HasExtendedXMP="SECRET-GUID" xmpMM:InstanceID="SECRET-INSTANCE"'
    )
    out = rebuild(packet(body, attrs), METADATA_GROUPS)
    assert kept(out) == {"dc:creator"}
    assert out is not None and b"SECRET" not in out  # rdf:about's uuid is not kept either


def test_a_serial_hidden_inside_a_kept_property_is_dropped() -> None:
    body = (
        "<dc:creator><rdf:Seq><rdf:li rdf:parseType='Resource'>"
        "<aux:SerialNumber>SECRET-SERIAL</aux:SerialNumber></rdf:li>"
        "<rdf:li>Ann Author</rdf:li></rdf:Seq></dc:creator>"
        "<exif:Flash rdf:parseType='Resource'><exif:Fired>True</exif:Fired>"
        "<aux:OwnerName>SECRET-OWNER</aux:OwnerName></exif:Flash>"
    )
    out = rebuild(packet(body), METADATA_GROUPS)
    assert out is not None and b"SECRET" not in out
    assert b"Ann Author" in out and b"<exif:Fired>True</exif:Fired>" in out


@pytest.mark.parametrize(
    "hostile",
    [
        # billion laughs
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10)
            for i in range(8)
        )
        + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&i;</x:xmpmeta>',
        # external entity
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>',
        b"<x:xmpmeta",  # truncated
        b"\xff\xfe<\x00x\x00",  # UTF-16 garbage
        b"\xc3\x28<x/>",  # invalid UTF-8
        b"<a>" * 100_000 + b"</a>" * 100_000,  # deep
        b"",
    ],
    ids=["billion-laughs", "xxe", "truncated", "utf16-garbage", "bad-utf8", "deep", "empty"],
)
def test_hostile_packets_are_dropped_not_crashes(hostile: bytes) -> None:
    start = time.monotonic()
    assert rebuild(hostile, METADATA_GROUPS) is None
    assert time.monotonic() - start < 5


def test_deeply_nested_values_are_cut_off() -> None:
    nested = "<rdf:Seq><rdf:li>" * 50 + "x" + "</rdf:li></rdf:Seq>" * 50
    out = rebuild(packet(f"<dc:subject>{nested}</dc:subject>" + CREATOR), ("xmp", "copyright"))
    assert kept(out) == {"dc:creator"}


@pytest.mark.parametrize(
    "encoding", ["utf-16-le", "utf-16-be", "utf-16", "utf-32", "utf-32-be", "utf-8-sig"]
)
@pytest.mark.parametrize("lead", ["", "  \n"])
def test_any_xmp_encoding_becomes_utf8(encoding: str, lead: str) -> None:
    data = (lead + packet(CREATOR.replace("Ann", "Änn ☃")).decode()).encode(encoding)
    out = rebuild(data, ("copyright",))
    assert out is not None and "Änn ☃".encode() in out


def test_text_is_escaped_and_languages_kept() -> None:
    body = (
        "<dc:title><rdf:Alt><rdf:li xml:lang='x-default'>a &lt;b&gt; &amp; ]]&gt;</rdf:li>"
        "<rdf:li xml:lang='fr\"&amp;'>t</rdf:li></rdf:Alt></dc:title>"
    )
    out = rebuild(packet(body), ("xmp",))
    assert out is not None
    assert parse(out)["dc:title"] == ("Alt", [("x-default", "a <b> & ]]>"), ('fr"&', "t")])


def test_rebuilt_packets_read_cleanly_in_exiftool(tmp_path: Path) -> None:
    """A UTF-16 source packet, rebuilt, embedded in a JPEG: exiftool sees the creator
    and no encoding error."""
    out = rebuild(packet(CREATOR).decode().encode("utf-16"), ("copyright",))
    path = tmp_path / "x.jpg"
    images.upright(16, 16).save(path, "JPEG", xmp=out)
    proc = subprocess.run(
        ["exiftool", "-j", "-G1", "-XMP:all", "-Warning", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"XMP-dc:Creator": "Ann Author"' in proc.stdout
    assert "Warning" not in proc.stdout


def test_unknown_properties_in_kept_namespaces_are_dropped() -> None:
    """An allowlist of properties, not of namespaces: a made-up property in a namespace
    a group keeps (xmpRights, dc, exif) is still not written."""
    attrs = (
        'dc:SerialNumber="SECRET-1" exif:CameraSerial="SECRET-3" '
        'xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" xmpRights:SerialNumber="SECRET-2"'
    )
    out = rebuild(packet(CREATOR, attrs), METADATA_GROUPS)
    assert out is not None and b"SECRET" not in out and b"Ann Author" in out
