"""The torture corpus: files that do not come from us, plus hostile files crafted here.

Real-world files come from Pillow's own test suite (``Tests/images`` of its source
distribution: ~1000 files, among them fuzzing crash/timeout/OOM reproducers). Nothing of
it is committed: ``pillow_images()`` runs ``pip download`` for the installed Pillow
version once per machine and extracts ``Tests/images`` into
``$AMBERPICD_TEST_CACHE`` (default ``~/.cache/amberpicd-tests``)/``pillow-<version>/``.
Without network (or with ``AMBERPICD_TEST_NO_DOWNLOAD=1``) it raises
``CorpusUnavailable``: the tests that need the files then fail with its reason (they skip
only for a deliberate ``AMBERPICD_TEST_NO_DOWNLOAD=1``, and never in CI). .ci/run fetches
them before the tests: ``python tests/corpus.py``.

``crafted()`` makes the rest in memory: truncated and empty files, wrong extensions,
huge-dimension headers, malformed and enormous EXIF, 16-bit/CMYK/palette/LA/I;16 modes,
multi-frame TIFF, MPO, animations, odd file names, symlinks, a FIFO and a device file.
``populate()`` lays entries out in an inbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

import images
from PIL import Image, ImageCms

CACHE_ENV = "AMBERPICD_TEST_CACHE"
NO_DOWNLOAD_ENV = "AMBERPICD_TEST_NO_DOWNLOAD"  # set it to skip instead of fetching
DOWNLOAD_TIMEOUT = 600  # seconds for pip to fetch the ~50 MB source distribution


class CorpusUnavailable(Exception):
    """Pillow's test images cannot be had here (no network, no pip); the reason says why."""


# --- Pillow's Tests/images ---------------------------------------------------------------


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "amberpicd-tests"


def pillow_images(pillow_version: str | None = None) -> Path:
    """The ``Tests/images`` folder of Pillow's sdist for the installed version, fetched
    and extracted once per machine (concurrent callers wait on a lock file)."""
    pillow_version = pillow_version or installed_version("pillow")
    root = cache_root()
    target = root / f"pillow-{pillow_version}"
    if (target / "images").is_dir():
        return target / "images"
    if os.environ.get(NO_DOWNLOAD_ENV):
        raise CorpusUnavailable(f"not in {target} and {NO_DOWNLOAD_ENV} is set")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "images").is_dir():
            _fetch(pillow_version, target)
    return target / "images"


def _fetch(pillow_version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        # --no-binary pillow (not :all:): the sdist, but build tools as wheels, so pip
        # only prepares metadata instead of building setuptools from source.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--retries",
            "2",
            "--timeout",
            "30",
            "--no-deps",
            "--no-binary",
            "pillow",
            f"pillow=={pillow_version}",
            "-d",
            tmp,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CorpusUnavailable(f"pip download of pillow {pillow_version}: {exc}") from None
        archives = list(Path(tmp).glob("pillow-*.tar.gz"))
        if proc.returncode != 0 or not archives:
            tail = (proc.stderr.strip().splitlines() or ["no sdist"])[-1]
            raise CorpusUnavailable(f"pip download of pillow {pillow_version} failed: {tail}")
        staging = Path(tmp) / "images"
        _extract_images(archives[0], staging)
        target.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target / "images")  # atomic: a half extraction is never used


def _extract_images(archive: Path, dest: Path) -> None:
    """Regular files under ``*/Tests/images/`` only; no links, no absolute paths."""
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if len(parts) < 4 or parts[1:3] != ("Tests", "images") or not member.isfile():
                continue
            rel = Path(*parts[3:])
            if ".." in rel.parts or rel.is_absolute():
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(out, "wb") as f:
                shutil.copyfileobj(src, f)


def pillow_files(images_dir: Path) -> list[Path]:
    """Every file of Pillow's corpus, relative to ``images_dir``, in a stable order."""
    found = []
    for folder, _, files in os.walk(images_dir):
        for name in files:
            found.append(Path(folder, name).relative_to(images_dir))
    return sorted(found)


# A cross-section for the quick run: fuzz reproducers and broken files of the allowed
# formats, a few refused formats' reproducers, and odd but valid files.
QUICK_PILLOW = (
    "oom-225817ca0f8c663be7ab4b9e717b02c661e66834.tif",
    "decompression_bomb.gif",
    "decompression_bomb_extents.gif",
    "test_extents.gif",
    "zero_width.gif",
    "png_decompression_dos.png",
    "broken_data_stream.png",
    "truncated_image.png",
    "truncated_end_chunk.png",
    "truncated_jpeg.jpg",
    "truncated_app14.jpg",
    "invalid-exif.jpg",
    "hopper_bad_exif.jpg",
    "exif-dpi-zerodivision.jpg",
    "photoshop-200dpi-broken.jpg",
    "exif_gps.jpg",
    "sugarshack_bad_mpo_header.jpg",
    "seek_too_large.tif",
    "tiff_tiled_jpeg_oob_read.tif",
    "tiff_overflow_rows_per_strip.tif",
    "total-pages-zero.tif",
    "cmx3g8_wv_1998.260_0745_mcidas.tiff",
    "hopper_bigtiff.tif",
    "lab.tif",
    "multipage.tiff",
    "hopper_rle8_row_overflow.bmp",
    "bmp/b/reallybig.bmp",
    "frozenpond.mpo",
    "fujifilm.mpo",
    "iss634.webp",
    "avif/star.avifs",
    "avif/rot2mir1.avif",
    "apng/chunk_no_fdat.png",
    "timeout-1ee28a249896e05b83840ae8140622de8e648ba9.psd",
    "eps/timeout-d675703545fee17acab56e5fec644c19979175de.eps",
    "crash-4fb027452e6988530aa5dabee76eecacb3b79f8a.j2k",
    "timeout-6646305047838720",
)


def quick_pillow_files(images_dir: Path) -> list[Path]:
    return [Path(n) for n in QUICK_PILLOW if (images_dir / n).is_file()]


# --- crafted files -----------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One thing to place in the inbox.

    ``name`` is relative to the inbox (bytes for names that are not UTF-8). ``kind`` is
    file | symlink | fifo | device. ``target``: for symlinks, a path relative to the
    inbox's parent. ``expect``: "done", "failed" (any one-line reason), a substring the
    error must contain, or None for "any clean outcome" (Pillow's files only: every crafted
    file says what must become of it). ``walked``: False when ``amberpicd process`` on the
    folder must not even list it (a symlink leading outside).
    """

    name: str | bytes
    data: bytes = b""
    kind: str = "file"
    target: str = ""
    expect: str | None = None
    walked: bool = True

    @property
    def fsname(self) -> bytes:
        return self.name if isinstance(self.name, bytes) else os.fsencode(self.name)


def encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + crc


def png_raw(width: int, height: int, depth: int, color: int, rows: bytes, extra=b"") -> bytes:
    """A PNG from raw filtered scanlines (each row starts with filter byte 0)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def png_zeros(width: int, height: int, color: int = 2) -> bytes:
    """A black 8-bit PNG (color 0: gray, 2: RGB, 6: RGBA), compressed row by row: a
    decompression bomb of any size without holding its pixels here."""
    bands = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    squeeze, row = zlib.compressobj(9), b"\0" * (width * bands + 1)
    idat = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    return head + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def tiff_ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
    """A little-endian TIFF header + one IFD at offset 8; values are inline (4 bytes) or
    offsets the caller computed. entries: (tag, type, count, 4-byte value field)."""
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
    return out + struct.pack("<I", next_ifd)


SHORT, LONG, ASCII = 3, 4, 2


def _short(v: int) -> bytes:
    return struct.pack("<H", v)


def _long(v: int) -> bytes:
    return struct.pack("<I", v)


def jpeg_with_app1(app1: bytes, size=(64, 48)) -> bytes:
    """A small JPEG whose only metadata segment is the raw APP1 payload ``app1``."""
    plain = encoded(images.upright(*size), "JPEG", quality=80)
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    return plain[:2] + segment + plain[2:]


def huge_headers() -> list[Entry]:
    """Small files whose headers declare billions of pixels."""
    small = images.upright(16, 16)
    exceeds = "pixels exceeds max_pixels"
    png = png_raw(100_000, 100_000, 8, 2, b"\0" * 64)
    gif = bytearray(encoded(small.convert("P"), "GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen
    at = gif.index(b",", 13)
    gif[at + 5 : at + 9] = struct.pack("<HH", 65535, 65535)  # image descriptor
    bmp = bytearray(encoded(small, "BMP"))
    bmp[18:26] = struct.pack("<ii", 100_000, 100_000)
    jpg = bytearray(encoded(small, "JPEG"))
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5 : sof + 9] = struct.pack(">HH", 65500, 65500)
    tif = tiff_ifd(
        [
            (256, LONG, 1, _long(1_000_000)),
            (257, LONG, 1, _long(1_000_000)),
            (258, SHORT, 1, _short(8)),
            (259, SHORT, 1, _short(1)),
            (262, SHORT, 1, _short(1)),
            (273, LONG, 1, _long(8)),
            (277, SHORT, 1, _short(1)),
            (278, LONG, 1, _long(1_000_000)),
            (279, LONG, 1, _long(64)),
        ]
    )
    webp = bytearray(encoded(small.convert("RGBA"), "WEBP", exif=images.exif_block().tobytes()))
    vp8x = webp.index(b"VP8X")
    webp[vp8x + 12 : vp8x + 18] = (16383).to_bytes(3, "little") * 2  # canvas 16384 x 16384
    return [
        Entry("huge/huge.png", png, expect=exceeds),
        Entry("huge/huge.gif", bytes(gif), expect=exceeds),
        Entry("huge/huge.bmp", bytes(bmp), expect=exceeds),
        Entry("huge/huge.jpg", bytes(jpg), expect=exceeds),
        Entry("huge/huge.tif", tif, expect=exceeds),
        # libwebp may reject it before the pixel limit does: a failure either way.
        Entry("huge/huge-canvas.webp", bytes(webp), expect="failed"),
        # Under the limit, but the data is 64 bytes: a decoder must not trust the header.
        Entry("huge/header-lies.png", png_raw(6000, 6000, 8, 2, b"\0" * 64), expect="truncated"),
        # 36 MP of zeros in a 36 KB file: a real decode, a real resample, then done.
        Entry("huge/zip-bomb.png", png_zeros(6000, 6000, color=0), expect="done"),
    ]


def broken_exif() -> list[Entry]:
    """EXIF that loops, lies about its sizes, is enormous, or is noise."""
    loop = tiff_ifd([(0x0112, SHORT, 1, _short(6)), (0x8769, LONG, 1, _long(8))], next_ifd=8)
    lying = tiff_ifd([(0x010E, ASCII, 0x7FFFFFFF, _long(26)), (0x8825, LONG, 1, _long(10**9))])
    many = b"II*\x00" + _long(8) + _short(0xFFFF) + b"\x12\x01\x03\x00" * 8  # 65535 entries
    big = images.exif_block(gps=True)
    big[0x010E] = "D" * 20000  # ImageDescription
    big.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + b"U" * 40000  # UserComment
    bad_orient = images.exif_block()
    bad_orient[0x0112] = 9
    text_orient = tiff_ifd([(0x0112, ASCII, 2, b"6\0")])
    noise = random.Random(6).randbytes(3000)
    # PNG eXIf chunks have no 64 KB cap: 50,000 tag entries in one.
    entries = b"".join(
        struct.pack("<HHI", 0x9000 + i % 2000, SHORT, 1) + b"\1\0\0\0" for i in range(50_000)
    )
    huge_ifd = b"II*\x00" + _long(8) + _short(50_000) + entries + _long(0)
    small = images.upright(48, 32)
    png_huge_exif = png_raw(
        48,
        32,
        8,
        2,
        b"".join(b"\0" + bytes(small.tobytes()[y * 144 : (y + 1) * 144]) for y in range(32)),
        extra=_chunk(b"eXIf", huge_ifd),
    )
    return [
        # Broken metadata never costs the picture: each of these is done.
        Entry("exif/loop.jpg", jpeg_with_app1(b"Exif\0\0" + loop), expect="done"),
        Entry("exif/lying-sizes.jpg", jpeg_with_app1(b"Exif\0\0" + lying), expect="done"),
        Entry("exif/65535-entries.jpg", jpeg_with_app1(b"Exif\0\0" + many), expect="done"),
        Entry(
            "exif/enormous-tags.jpg",
            encoded(images.upright(64, 48), "JPEG", exif=big.tobytes()),
            expect="done",
        ),
        Entry(
            "exif/orientation-9.jpg",
            encoded(images.upright(64, 48), "JPEG", exif=bad_orient.tobytes()),
            expect="done",
        ),
        Entry(
            "exif/orientation-text.jpg", jpeg_with_app1(b"Exif\0\0" + text_orient), expect="done"
        ),
        Entry("exif/noise.jpg", jpeg_with_app1(b"Exif\0\0" + noise), expect="done"),
        Entry("exif/huge-exif-chunk.png", png_huge_exif, expect="done"),
    ]


def _gradient16(width: int, height: int, channels: int) -> bytes:
    """Raw 16-bit big-endian PNG scanlines with a diagonal ramp in every channel."""
    rows = []
    for y in range(height):
        row = bytearray(b"\0")
        for x in range(width):
            value = (x * 65535 // max(1, width - 1) + y * 997) & 0xFFFF
            row += struct.pack(">H", value) * channels
        rows.append(bytes(row))
    return b"".join(rows)


def modes() -> list[Entry]:
    """Valid files in every pixel layout the allowed formats carry: all must be done."""
    up = images.upright(96, 64)
    rgba = images.upright(96, 64, mode="RGBA")
    palette = up.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    gray16 = up.convert("L").convert("I").point(lambda v: v * 257)
    cases = {
        "modes/gray16.png": png_raw(96, 64, 16, 0, _gradient16(96, 64, 1)),
        "modes/rgb48.png": png_raw(96, 64, 16, 2, _gradient16(96, 64, 3)),
        "modes/rgba64.png": png_raw(96, 64, 16, 6, _gradient16(96, 64, 4)),
        "modes/la16.png": png_raw(96, 64, 16, 4, _gradient16(96, 64, 2)),
        "modes/i16.png": encoded(gray16.convert("I;16"), "PNG"),
        "modes/cmyk.jpg": encoded(up.convert("CMYK"), "JPEG"),
        "modes/cmyk.tif": encoded(up.convert("CMYK"), "TIFF"),
        "modes/palette-trns.png": encoded(palette, "PNG", transparency=0),
        "modes/palette.gif": encoded(palette, "GIF"),
        "modes/la.png": encoded(rgba.convert("LA"), "PNG"),
        "modes/l.png": encoded(up.convert("L"), "PNG"),
        "modes/bilevel.png": encoded(up.convert("1"), "PNG"),
        "modes/bilevel-g4.tif": encoded(up.convert("1"), "TIFF", compression="group4"),
        "modes/i16.tif": encoded(gray16.convert("I;16"), "TIFF"),
        "modes/i16b.tif": encoded(gray16.convert("I;16B"), "TIFF"),
        "modes/int32.tif": encoded(gray16, "TIFF"),
        "modes/float.tif": encoded(up.convert("F"), "TIFF"),
        "modes/rgba.tif": encoded(rgba, "TIFF", compression="tiff_lzw"),
        "modes/rgba.bmp": encoded(rgba, "BMP"),
        "modes/palette.bmp": encoded(palette, "BMP"),
        "modes/rgba.webp": encoded(rgba, "WEBP", lossless=True),
        "modes/gray.jpg": encoded(up.convert("L"), "JPEG"),
        "modes/progressive.jpg": encoded(up, "JPEG", progressive=True),
    }
    return [Entry(name, data, expect="done") for name, data in cases.items()]


def multi_frame() -> list[Entry]:
    frames = [images.upright(80, 60).rotate(a) for a in (0, 25, 50)]
    first, rest = frames[0], frames[1:]
    anim = {"save_all": True, "append_images": rest, "duration": 80, "loop": 0}
    pages = [images.upright(80, 60), images.upright(40, 30, "RGBA"), images.upright(200, 20)]
    tiny = [Image.new("L", (16, 16)) for _ in range(150)]
    for i, im in enumerate(tiny):  # all different: Pillow's writer merges equal frames
        im.putpixel((i % 16, i // 16), 255)
    mixed = [frames[0].convert("RGBA"), frames[1].convert("P"), frames[2].convert("L")]
    return [
        Entry("frames/anim.gif", encoded(first, "GIF", **anim), expect="done"),
        Entry("frames/anim.webp", encoded(first, "WEBP", **anim), expect="done"),
        Entry("frames/anim.png", encoded(first, "PNG", **anim), expect="done"),  # APNG
        Entry("frames/anim.avif", encoded(first, "AVIF", **anim), expect="done"),
        Entry(
            "frames/mixed-modes.gif",
            encoded(mixed[0], "GIF", save_all=True, append_images=mixed[1:], disposal=2),
            expect="done",
        ),
        Entry(
            "frames/pages.tif",
            encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
            expect="done",
        ),
        Entry(
            "frames/stereo.mpo",
            encoded(first, "MPO", save_all=True, append_images=rest[:1]),
            expect="done",
        ),
        Entry(
            "frames/150-frames.gif",
            encoded(tiny[0], "GIF", save_all=True, append_images=tiny[1:]),
            expect="frames exceeds max_frames",
        ),
    ]


def broken() -> list[Entry]:
    """Truncated, empty, mislabelled and refused files."""
    up = images.upright(160, 120)
    whole = {
        "jpg": encoded(up, "JPEG", quality=90),
        "png": encoded(up, "PNG"),
        "gif": encoded(up, "GIF"),
        "webp": encoded(up, "WEBP"),
        "tif": encoded(up, "TIFF"),
        "bmp": encoded(up, "BMP"),
        "heic": encoded(up, "HEIF"),
        "avif": encoded(up, "AVIF"),
    }
    # Pillow's own words for some codecs' truncation: "file is truncated" (the others say it
    # their own way, after "decode failed").
    says_truncated = {"jpg", "png", "gif", "tif", "bmp"}
    out = [
        Entry(
            f"truncated/half.{ext}",
            data[: len(data) // 2],
            expect="decode failed: file is truncated" if ext in says_truncated else "decode failed",
        )
        for ext, data in whole.items()
    ]
    out += [
        Entry("truncated/header-only.jpg", whole["jpg"][:40], expect="decode failed"),
        Entry("truncated/one-byte.png", b"\x89", expect="not an image"),
        Entry("truncated/signature-only.png", whole["png"][:8], expect="decode failed"),
        Entry("empty/zero.jpg", b"", expect="file is empty"),
        Entry("empty/zero.heic", b"", expect="file is empty"),
        Entry("wrong-ext/png-data.jpg", whole["png"], expect="done"),
        Entry("wrong-ext/jpeg-data.png", whole["jpg"], expect="done"),
        Entry("wrong-ext/gif-data.webp", whole["gif"], expect="done"),
        Entry("wrong-ext/heic-data.jpg", whole["heic"], expect="done"),
        Entry("wrong-ext/jpeg-no-extension", whole["jpg"], expect="done"),
        Entry("wrong-ext/text.heic", b"just some text\n" * 20, expect="not an image"),
        Entry(
            "wrong-ext/page.png",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            expect="not an image",
        ),
        # Ghostscript would run for these if Pillow were allowed to parse them.
        Entry(
            "refused/vector.jpg",
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n",
            expect="unsupported format eps",
        ),
        Entry(
            "refused/binary-eps.png",
            b"\xc5\xd0\xd3\xc6" + b"\0" * 60,
            expect="unsupported format eps",
        ),
        Entry("refused/layers.tif", b"8BPS\x00\x01" + b"\0" * 64, expect="unsupported format psd"),
        Entry(
            "refused/doc.webp", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", expect="unsupported format pdf"
        ),
    ]
    return out


def odd_names() -> list[Entry]:
    jpg = encoded(images.upright(64, 48), "JPEG")
    return [
        Entry(b"names/caf\xe9-latin1.jpg", jpg, expect="done"),
        Entry(b"names/dir-\xff\xfe/inner.jpg", jpg, expect="done"),
        Entry("names/" + "L" * 246 + ".jpg", jpg, expect="done"),  # a 250-byte name
        Entry("names/ctl\x1b[31m\nnewline\ttab\x7f.jpg", jpg, expect="done"),
        Entry("names/bidi-\u202egpj.exe", jpg, expect="done"),
        Entry("names/-rf --help.jpg", jpg, expect="done"),
        Entry("names/dots..in..the..middle...jpg", jpg, expect="done"),
        Entry("names/..starts-with-dots.jpg", jpg, walked=False),  # a hidden name
        Entry("names/nfd-cafe\u0301.jpg", jpg, expect="done"),
        Entry("names/folder.jpg/inside.png", encoded(images.upright(32, 32), "PNG"), expect="done"),
        Entry("names/.hidden.jpg", jpg, walked=False),
        # A failure's one-line error starts with this name, escaped: no newline, no ESC.
        Entry(b"names/broken-\xff\n\x1b[2J.jpg", b"\xff\xd8\xff\xe0 cut", expect="decode failed"),
    ]


def limits_and_shapes() -> list[Entry]:
    png = encoded(images.upright(32, 32), "PNG")
    oversize = png + b"\0" * (9 * 1024 * 1024)  # trailing junk past IEND: 9 MiB
    return [
        Entry("limits/oversize.png", oversize, expect="bytes exceeds max_file_bytes"),
        Entry("shapes/1x1.png", encoded(Image.new("RGB", (1, 1), "red"), "PNG"), expect="done"),
        Entry("shapes/1x5000.png", encoded(Image.new("L", (1, 5000), 90), "PNG"), expect="done"),
        Entry(
            "shapes/5000x1.jpg", encoded(Image.new("RGB", (5000, 1), "blue"), "JPEG"), expect="done"
        ),
    ]


def good() -> list[Entry]:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = images.stored(images.upright(400, 300), 6)
    exif = images.exif_block(orientation=6, gps=True).tobytes()
    heic = images.upright(300, 200)
    return [
        Entry(
            "good/photo.jpg", encoded(photo, "JPEG", exif=exif, icc_profile=profile), expect="done"
        ),
        Entry("good/photo.heic", encoded(heic, "HEIF", exif=exif), expect="done"),
        Entry("good/photo.avif", encoded(heic, "AVIF", exif=exif), expect="done"),
        Entry("good/logo.png", encoded(images.upright(300, 200, "RGBA"), "PNG"), expect="done"),
    ]


OUTSIDE_SECRET = "outside/secret.jpg"  # relative to the inbox's parent


def special(inbox_name: str = "inbox") -> list[Entry]:
    """Symlinks (never followed), a FIFO and a character device (never read, never block)."""
    return [
        Entry("links/to-outside.jpg", kind="symlink", target=OUTSIDE_SECRET, walked=False),
        Entry("links/dir-outside", kind="symlink", target="outside", walked=False),
        Entry(
            "links/to-inside.jpg",
            kind="symlink",
            target=f"{inbox_name}/good/logo.png",
            expect="symbolic link",
        ),
        Entry(
            "links/dangling.jpg",
            kind="symlink",
            target=f"{inbox_name}/missing.jpg",
            expect="symbolic link",
        ),
        Entry("special/fifo.jpg", kind="fifo", expect="not a regular file"),
        Entry("special/zero-device.jpg", kind="device", expect="not a regular file"),
    ]


def crafted(inbox_name: str = "inbox") -> list[Entry]:
    return [
        *good(),
        *huge_headers(),
        *broken_exif(),
        *modes(),
        *multi_frame(),
        *broken(),
        *odd_names(),
        *limits_and_shapes(),
        *special(inbox_name),
    ]


def populate(inbox: Path, entries: Iterable[Entry]) -> list[Entry]:
    """Create ``entries`` below ``inbox`` (and the outside file symlinks point at); returns
    those actually made: a device file needs root and a filesystem that allows it."""
    inbox.mkdir(parents=True, exist_ok=True)
    secret = inbox.parent / OUTSIDE_SECRET
    if not secret.exists():
        secret.parent.mkdir(parents=True, exist_ok=True)
        images.jpeg(secret, (64, 48), gps=True)
    made = []
    for entry in entries:
        path = os.path.join(os.fsencode(inbox), entry.fsname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if entry.kind == "file":
            with open(path, "wb") as f:
                f.write(entry.data)
        elif entry.kind == "symlink":
            os.symlink(os.fsencode(inbox.parent / entry.target), path)
        elif entry.kind == "fifo":
            os.mkfifo(path)
        elif entry.kind == "device":
            try:
                os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero
            except OSError:
                continue
        made.append(entry)
    return made


def copy_pillow(images_dir: Path, files: Iterable[Path], inbox: Path) -> list[Entry]:
    """Copy some of Pillow's files into ``inbox/pillow/``; their entries (expect None)."""
    made = []
    for rel in files:
        dest = inbox / "pillow" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(images_dir / rel, dest)
        made.append(Entry(str(Path("pillow") / rel)))
    return made


def cleanup_special(root: Path) -> None:
    """Remove FIFOs and device files (so tmp_path cleanup never trips over them)."""
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    os.unlink(path)


if __name__ == "__main__":  # .ci/run: fetch Pillow's test images before the tests need them
    try:
        print(f"Pillow's test images: {pillow_images()}")
    except CorpusUnavailable as exc:
        sys.exit(f"Pillow's test images: {exc}")
