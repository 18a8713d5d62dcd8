"""Privacy you can check: what the outputs carry, read by an independent reader
(exiftool, Debian's ``libimage-exiftool-perl``), and proof that the engine opens no
network socket (a Python audit hook, tests/nonet/sitecustomize.py) and has no network
code (a static check of every module).

Sources carry everything a camera, a phone or an editor leaves: GPS, camera and lens,
serial numbers, dates, copyright, a maker note, an EXIF thumbnail (IFD1) with its own
metadata, XMP (with GPS in it), IPTC, an ICC profile and a comment. Every text value
holds ``SECRET`` so that a leak also shows in the raw bytes.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import images
import pytest
from exifcheck import exiftool, leaks
from PIL import Image, ImageCms, PngImagePlugin

ROOT = Path(__file__).resolve().parent.parent
NONET = Path(__file__).resolve().parent / "nonet"
FORMATS = ("jpeg", "png", "webp", "avif", "tiff", "gif")
SECRET = b"SECRET"

XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/">'
    b"<dc:creator><rdf:Seq><rdf:li>SECRET-XMP-CREATOR</rdf:li></rdf:Seq></dc:creator>"
    b"<exif:GPSLatitude>48,51.5N</exif:GPSLatitude>"
    b"<exif:GPSLongitude>2,17.6E</exif:GPSLongitude>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def iptc_segment() -> bytes:
    """An APP13 segment: Photoshop image resource 0x0404 holding IPTC-IIM records."""

    def record(dataset: int, value: bytes) -> bytes:
        return bytes([0x1C, 2, dataset]) + struct.pack(">H", len(value)) + value

    iim = record(80, b"SECRET-IPTC-BYLINE") + record(116, b"SECRET-IPTC-COPYRIGHT")
    iim += record(25, b"SECRET-IPTC-KEYWORD") + record(90, b"SECRET-IPTC-CITY")
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iim)) + iim
    if len(iim) % 2:
        resource += b"\0"
    payload = b"Photoshop 3.0\0" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def canon_maker_note() -> bytes:
    """A Canon-style maker note (a bare IFD; values inline) plus trailing private bytes."""
    entries = [(0x000C, 4, 1, 987654321), (0x0010, 4, 1, 0x80000001)]  # serial, model id
    note = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        note += struct.pack("<HHII", tag, kind, count, value)
    return note + struct.pack("<I", 0) + b"SECRET-MAKERNOTE-PRIVATE"


def full_exif(orientation: int = 6) -> bytes:
    """EXIF with IFD0, Exif IFD (maker note, serials), GPS IFD and an IFD1 thumbnail."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"  # so that exiftool decodes the maker note
    exif[0x0110] = "SECRET-MODEL"
    exif[0x010E] = "SECRET-DESCRIPTION"
    exif[0x013B] = "SECRET-ARTIST"
    exif[0x8298] = "SECRET-COPYRIGHT"
    exif[0x0131] = "SECRET-SOFTWARE"
    exif[0x0132] = "2024:05:06 07:08:09"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:06 07:08:09"
    sub[0x927C] = canon_maker_note()
    sub[0xA431] = "SECRET-BODY-SERIAL"
    sub[0xA430] = "SECRET-OWNER"
    sub[0xA420] = "SECRET-UNIQUE-ID"
    sub[0x9286] = b"ASCII\0\0\0SECRET-USER-COMMENT"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    gps[0x1B] = b"ASCII\0\0\0SECRET-GPS-METHOD"
    tiff = bytearray(exif.tobytes()[6:])  # without the "Exif\0\0" prefix
    return b"Exif\0\0" + add_thumbnail(tiff)


def add_thumbnail(tiff: bytearray) -> bytes:
    """Append IFD1 (JPEG thumbnail, which has its own comment) and link it from IFD0."""
    end = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack(end + "I", tiff[4:8])[0]
    count = struct.unpack(end + "H", tiff[ifd0 : ifd0 + 2])[0]
    link = ifd0 + 2 + 12 * count
    thumb = images.encoded(images.upright(32, 24), "JPEG", comment=b"SECRET-THUMB-COMMENT")
    if len(tiff) % 2:
        tiff += b"\0"
    ifd1 = len(tiff)
    data_at = ifd1 + 2 + 3 * 12 + 4
    tiff[link : link + 4] = struct.pack(end + "I", ifd1)
    tiff += struct.pack(end + "H", 3)
    tiff += struct.pack(end + "HHIHH", 0x0103, 3, 1, 6, 0)  # Compression: JPEG
    tiff += struct.pack(end + "HHII", 0x0201, 4, 1, data_at)  # JPEGInterchangeFormat
    tiff += struct.pack(end + "HHII", 0x0202, 4, 1, len(thumb))  # ...Length
    tiff += struct.pack(end + "I", 0) + thumb
    return bytes(tiff)


def source_jpeg(path: Path) -> Path:
    """A phone/camera JPEG with every kind of metadata, stored rotated (orientation 6)."""
    im = images.stored(images.upright(640, 480), 6)
    data = images.encoded(
        im,
        "JPEG",
        quality=90,
        exif=full_exif(6),
        icc_profile=srgb(),
        xmp=XMP,
        comment=b"SECRET-JPEG-COMMENT",
    )
    path.write_bytes(data[:2] + iptc_segment() + data[2:])  # APP13 right after SOI
    return path


def source_png(path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SECRET-PNG-COMMENT")
    info.add_text("Author", "SECRET-PNG-AUTHOR")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    images.upright(480, 360, "RGBA").save(
        path, "PNG", pnginfo=info, exif=full_exif(1)[6:], icc_profile=srgb()
    )
    return path


def source_webp(path: Path) -> Path:
    images.upright(480, 360).save(
        path, "WEBP", exif=full_exif(1), xmp=XMP, icc_profile=srgb(), quality=90
    )
    return path


def source_heic(path: Path) -> Path:
    images.upright(480, 360).save(
        path, "HEIF", exif=full_exif(1), xmp=XMP, icc_profile=srgb(), quality=80
    )
    return path


SOURCES = {
    "phone.jpg": source_jpeg,
    "edited.png": source_png,
    "web.webp": source_webp,
    "iphone.heic": source_heic,
}


# --- processing --------------------------------------------------------------------------


def write_config(base: Path, keep: list[str] | None = None) -> Path:
    """One rule per output format; ``keep`` None leaves the default metadata policy."""
    rules = []
    for fmt in FORMATS:
        keep_line = f"\n    keep_metadata: {json.dumps(keep)}" if keep is not None else ""
        rules.append(
            f"""
  - name: to-{fmt}
    pipeline: [auto_orient, {{resize: {{width: 320, height: 320}}}}, {{encode: {fmt}}}]
    output: {base}/out/{{rule}}/{{stem}}.{{ext}}{keep_line}"""
        )
    config = base / "config.yaml"
    config.write_text("version: 1\nrules:" + "".join(rules) + "\n")
    return config


def process(config: Path, inputs: Path, env: dict[str, str] | None = None) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json", str(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows, proc.stderr
    return rows


def outputs_by_format(rows: list[dict]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {fmt: [] for fmt in FORMATS}
    for row in rows:
        assert row["status"] == "done", row
        for output in row["outputs"]:
            found[Path(output).parent.name.removeprefix("to-")].append(Path(output))
    return found


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("privacy") / "sources"
    folder.mkdir()
    for name, make in SOURCES.items():
        make(folder / name)
    return folder


@pytest.fixture(scope="module")
def default_outputs(sources: Path, tmp_path_factory) -> dict[str, list[Path]]:
    base = tmp_path_factory.mktemp("default-policy")
    return outputs_by_format(process(write_config(base), sources))


def test_sources_carry_every_kind_of_metadata(sources: Path):
    """The check below is only worth something if exiftool sees all of it in the sources."""
    for tags in exiftool(*sorted(sources.iterdir())):
        name = Path(tags["SourceFile"]).name
        groups = {key.rpartition(":")[0] for key in tags}
        assert {"EXIF:IFD0", "EXIF:ExifIFD", "EXIF:GPS", "EXIF:IFD1"} <= groups, name
        assert "MakerNotes:Canon" in groups and "XMP:XMP-dc" in groups, name
        assert "XMP:XMP-exif" in groups, name  # GPS in XMP too
        if name == "phone.jpg":
            assert {"IPTC", "ICC_Profile:ICC-header"} <= groups
            assert tags["File:Comment"] == "SECRET-JPEG-COMMENT"
        if name == "edited.png":
            assert tags["PNG:Comment"] == "SECRET-PNG-COMMENT"


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_policy_keeps_only_the_colour_profile(default_outputs, fmt: str):
    paths = default_outputs[fmt]
    assert len(paths) == len(SOURCES)
    for tags in exiftool(*paths):
        path = Path(tags["SourceFile"])
        assert tags.get("ExifTool:Warning") is None or "Error" not in tags["ExifTool:Warning"]
        assert not leaks(tags, fmt), f"{path.name} ({fmt}): {leaks(tags, fmt)}"
        raw = path.read_bytes()
        assert SECRET not in raw, f"{path.name} ({fmt}) holds {raw[raw.find(SECRET) :][:40]!r}"
        assert b"Canon" not in raw and b"8BIM" not in raw and b"Exif\0\0" not in raw
        if fmt != "gif":  # GIF has no colour profiles (Pillow writes none)
            icc = [k for k in tags if k.startswith("ICC_Profile:")]
            assert icc, f"{path.name} ({fmt}) lost its colour profile"
        with Image.open(path) as im:
            assert im.format == fmt.upper() and im.size[0] <= 320 and im.size[1] <= 320


@pytest.fixture(scope="module")
def gps_outputs(sources: Path, tmp_path_factory) -> dict[str, list[Path]]:
    base = tmp_path_factory.mktemp("keep-gps")
    return outputs_by_format(process(write_config(base, keep=["gps"]), sources / "phone.jpg"))


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])  # GIF has no EXIF
def test_keeping_gps_keeps_gps_and_the_check_sees_it(gps_outputs, fmt: str):
    """``keep_metadata: [gps]`` writes GPS: the same check then fails, so it can."""
    (path,) = gps_outputs[fmt]
    (tags,) = exiftool(path)
    assert tags["EXIF:GPS:GPSLatitudeRef"] == "North"
    assert tags["Composite:GPSPosition"].startswith("48 deg 51' 30.00\" N")
    assert any("GPS" in leak for leak in leaks(tags, fmt))
    assert not any(word in leak for leak in leaks(tags, fmt) for word in ("Make", "Canon"))
    assert "ICC_Profile:ICC-header:ProfileClass" not in tags  # icc was not in keep_metadata


# --- no network --------------------------------------------------------------------------


def nonet_env(log: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "AMBERPIC_NONET": str(log), "AMBERPIC_NONET_EXEC": "python"}


def test_the_tripwire_fires_on_network_and_programs(tmp_path: Path):
    """The hook is real: a TCP connect, a DNS lookup and starting gs are all stopped,
    while AF_UNIX sockets and running Python work."""
    log = tmp_path / "nonet.log"
    env = {**os.environ, **nonet_env(log)}
    attempts = {
        "tcp": "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)",
        "udp": "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        "dns": "import socket; socket.getaddrinfo('localhost', 80)",
        "default-family": "import socket; socket.socket()",
        "program": "import subprocess; subprocess.run(['gs', '--version'])",
        # A forkserver child (as the engine's workers are) inherits the hook.
        "worker": (
            "import multiprocessing as mp, socket, sys\n"
            "p = mp.get_context('forkserver').Process(target=socket.socket, args=(2,))\n"
            "p.start(); p.join(); sys.exit(p.exitcode)"
        ),
    }
    for what, code in attempts.items():
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=30
        )
        assert proc.returncode == 86, (what, proc.stderr)
    allowed = (
        "import socket, subprocess, sys, multiprocessing as mp\n"
        "a, b = socket.socketpair(); a.sendall(b'x'); assert b.recv(1) == b'x'\n"
        "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()\n"
        "subprocess.run([sys.executable, '-c', 'pass'], check=True)\n"
        "ctx = mp.get_context('forkserver'); p = ctx.Process(target=print); p.start(); p.join()\n"
        "assert p.exitcode == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", allowed], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert sum(line.startswith("VIOLATION") for line in lines) == len(attempts)


def test_processing_opens_no_network_socket_and_runs_no_program(tmp_path: Path, sources: Path):
    """The full engine (CLI, forkserver, workers; every output format; an EPS that
    Ghostscript would render) under the tripwire."""
    inputs = tmp_path / "in"
    shutil.copytree(sources, inputs)
    (inputs / "vector.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n")
    log = tmp_path / "nonet.log"
    rows = process(write_config(tmp_path), inputs, env=nonet_env(log))
    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("VIOLATION")], lines
    assert sum(line.startswith("armed") for line in lines) >= 2  # the CLI and its forkserver
    by_name = {Path(r["source"]).name: r for r in rows}
    assert by_name.pop("vector.eps")["error"].startswith("vector.eps: unsupported format eps")
    assert {r["status"] for r in by_name.values()} == {"done"}
    assert sum(len(r["outputs"]) for r in by_name.values()) == len(SOURCES) * len(FORMATS)


# --- no network code ---------------------------------------------------------------------

NETWORK_MODULES = {
    "http",
    "urllib.request",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "poplib",
    "imaplib",
    "nntplib",
    "telnetlib",
    "xmlrpc",
    "socketserver",
    "ssl",
    "websocket",
    "websockets",
    "paramiko",
    "zeroconf",
}
NETWORK_NAMES = {
    "AF_INET",
    "AF_INET6",
    "AF_PACKET",
    "AF_BLUETOOTH",
    "AF_CAN",
    "create_connection",
    "create_server",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "gethostbyaddr",
    "getfqdn",
    "open_connection",
    "start_server",
    "create_datagram_endpoint",
    "urlopen",
}


def network_code(tree: ast.AST) -> list[str]:
    """What in ``tree`` imports a network library, names a non-Unix socket family or
    lookup, or creates a socket without saying AF_UNIX."""
    found = []

    def banned(module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in NETWORK_MODULES)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if banned(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if banned(node.module):
                found.append(f"from {node.module} import ...")
            names = [a.name for a in node.names if a.name in NETWORK_NAMES]
            found += [f"from {node.module} import {name}" for name in names]
        elif isinstance(node, ast.Attribute) and node.attr in NETWORK_NAMES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NETWORK_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.Call) and _is_socket_constructor(node.func):
            family = node.args[0] if node.args else None
            family = next((k.value for k in node.keywords if k.arg == "family"), family)
            name = getattr(family, "attr", getattr(family, "id", None))
            if name != "AF_UNIX":
                found.append(f"line {node.lineno}: a socket that is not AF_UNIX")
    return found


def _is_socket_constructor(func: ast.expr) -> bool:
    """``socket.socket(...)``, or ``socket(...)`` after ``from socket import socket``."""
    if isinstance(func, ast.Attribute):
        return func.attr == "socket" and getattr(func.value, "id", None) == "socket"
    return isinstance(func, ast.Name) and func.id == "socket"


def test_no_module_has_network_code():
    problems = {}
    for path in sorted((ROOT / "amberpicd").rglob("*.py")):
        found = network_code(ast.parse(path.read_text(), filename=str(path)))
        if found:
            problems[str(path.relative_to(ROOT))] = found
    assert not problems, problems


@pytest.mark.parametrize(
    "code",
    [
        "import urllib.request",
        "from http.client import HTTPConnection",
        "import socket\ns = socket.socket()",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        "import socket\nsocket.create_connection(('example.org', 80))",
        "from socket import getaddrinfo",
        "from socket import socket\nsocket()",
        "import asyncio\nasyncio.open_connection('h', 1)",
    ],
)
def test_the_static_check_catches_network_code(code: str):
    assert network_code(ast.parse(code))


def test_the_static_check_allows_unix_sockets():
    code = (
        "import socket\nfrom urllib.parse import quote\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "t = socket.socket(family=socket.AF_UNIX)\na, b = socket.socketpair()\n"
    )
    assert network_code(ast.parse(code)) == []
