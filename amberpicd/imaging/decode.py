"""Safe decoding: read a file once, check it against the limits, decode it once.

Only allow-listed formats reach a decoder, each by its own plugin (``formats=[...]``),
so EPS, PSD and the long tail of Pillow plugins are refused without being parsed, and
Ghostscript is never run. Header-declared sizes are checked before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import re
import stat
import warnings
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from PIL import EpsImagePlugin, Image, ImageFile

from amberpicd.errors import DecodeError, InputRejected, SourceChanged
from amberpicd.fs.confined import Escape, SymlinkRefused, open_dir_of
from amberpicd.fs.identity import FileIdentity
from amberpicd.imaging.gifmeta import gif_metadata
from amberpicd.imaging.limits import DecodeLimits
from amberpicd.imaging.memory import tune_for_images
from amberpicd.imaging.picture import Picture
from amberpicd.imaging.sniff import SNIFF_BYTES, sniff
from amberpicd.rules.facts import Facts

PILLOW_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "tiff": "TIFF",
    "bmp": "BMP",
    "heif": "HEIF",
    "avif": "AVIF",
}
# Pillow's modules for the formats above, imported up front: Image.open and save would
# otherwise import all ~40 of Pillow's plugins the first time a format is not loaded yet.
PLUGINS = (
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.WebPImagePlugin",
    "PIL.TiffImagePlugin",
    "PIL.BmpImagePlugin",
    "PIL.AvifImagePlugin",
)
ANIMATABLE = frozenset({"gif", "webp", "png", "avif"})
_EXIF_IFD, _DATETIME_ORIGINAL, _DATETIME, _ORIENTATION = 0x8769, 0x9003, 0x0132, 0x0112
_READ_CHUNK = 16 * 1024**2
# A DCT-scaled decode at just the output size averages 8x8 blocks into aliasing: 7 dB
# below libvips against a Lanczos reference. Decoding at twice the size, as libvips and
# Pillow's thumbnail() do, matches libvips.
DRAFT_GAP = 2
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_configured = False


def configure_pillow() -> None:
    """Process-wide Pillow settings; idempotent. Run in every worker before decoding."""
    global _configured
    if _configured:
        return
    load_plugins()
    EpsImagePlugin.gs_binary = False  # never run Ghostscript, whatever is installed
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Plugins warn about what they skip in odd files (corrupt EXIF, bad tags): the file's
    # outcome says what matters, and the log stays one line per file.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    tune_for_images()  # pixels in one block, freed memory reused: see imaging/memory.py
    _configured = True


def load_plugins() -> None:
    """Import the allowed formats' Pillow plugins (and pillow-heif's opener); idempotent."""
    import pillow_heif

    for name in PLUGINS:
        with contextlib.suppress(ImportError):  # AVIF: Pillow 11.3 and later
            importlib.import_module(name)
    pillow_heif.register_heif_opener()


def read_source(
    path: Path, limits: DecodeLimits, relpath: str = "", roots: Iterable[Path] = ()
) -> tuple[bytes, FileIdentity]:
    """The whole file, read once, and the identity of what was read; refuses non-regular
    files and files over the size limit.

    The file is opened through its folder's descriptor, walked down from its inbox root
    (``relpath`` is its folder below the inbox; ``roots`` the configured folders, see
    ``fs.confined.within``) without following links, so a sub-folder
    swapped for a link cannot make the daemon read a file outside the inbox. The open
    uses O_NOFOLLOW | O_NONBLOCK and the descriptor is checked, so a FIFO or device
    swapped in after a check can never block or be read. The identity comes from fstat of
    that descriptor before and after the read: if they differ, someone wrote to the file
    meanwhile and SourceChanged is raised (the bytes are no version of the file).
    """
    try:
        with open_dir_of(path, relpath, verb="read", roots=roots) as folder:
            try:
                fd = folder.open_read(path.name)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):
                    st = folder.lstat(path.name)
                    if st is not None and stat.S_ISLNK(st.st_mode):
                        raise InputRejected(path, "is a symbolic link; not followed") from None
                raise
    except InputRejected:
        raise
    except (SymlinkRefused, Escape) as exc:
        raise InputRejected(path, str(exc)) from None
    except FileNotFoundError:
        raise InputRejected(path, "file vanished before it could be read") from None
    except OSError as exc:
        raise InputRejected(path, f"cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputRejected(path, "not a regular file")
        if st.st_size == 0:
            raise InputRejected(path, "file is empty")
        if st.st_size > limits.max_file_bytes:
            raise InputRejected(
                path, f"{st.st_size} bytes exceeds max_file_bytes {int(limits.max_file_bytes)}"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = _read_upto(f, st.st_size, int(limits.max_file_bytes))
        identity = FileIdentity.of(st)
        if not identity.matches(os.fstat(fd)):
            raise SourceChanged(path, "changed while being read; taken again once it settles")
    finally:
        os.close(fd)
    if len(data) > limits.max_file_bytes:
        raise InputRejected(path, f"file grew beyond max_file_bytes {int(limits.max_file_bytes)}")
    if len(data) != identity.size:
        raise SourceChanged(path, "changed while being read; taken again once it settles")
    return data, identity


def _read_upto(f: io.BufferedReader, expected: int, limit: int) -> bytes:
    """The file's bytes, at most ``limit + 1`` of them. ``read(n)`` allocates ``n`` bytes
    up front, so the first read is sized by the file, never by the limit (which would
    cost every job that much memory, and fail under a smaller worker_memory); a file
    still growing is read on in bounded chunks."""
    parts, size, want = [], 0, expected + 1
    while size <= limit:
        chunk = f.read(min(want, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        want = _READ_CHUNK
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _exif_date(exif: Image.Exif) -> tuple[datetime, str] | None:
    """The capture date and the tag it came from, for ``{date}`` and ``explain``."""
    for tag, value in (
        ("EXIF DateTimeOriginal", exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)),
        ("EXIF DateTime", exif.get(_DATETIME)),
    ):
        if isinstance(value, str):
            try:
                return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S"), tag
            except ValueError:
                continue
    return None


class Source:
    """An opened (header-parsed, not decoded) input file and its Facts."""

    def __init__(
        self,
        path: Path,
        data: bytes,
        limits: DecodeLimits,
        mtime: float | None = None,
        content_hash: str | None = None,  # sha256 hex of data, when the caller has it
    ):
        configure_pillow()
        self.path = path
        fmt = sniff(data[:SNIFF_BYTES])
        if fmt is None:
            raise InputRejected(path, "not an image (unrecognised content)")
        if fmt not in limits.formats:
            allowed = ", ".join(limits.formats)
            raise InputRejected(path, f"unsupported format {fmt} (allowed: {allowed})")
        # Our own check below names the limit and the value; Pillow's guards decoding.
        Image.MAX_IMAGE_PIXELS = None
        try:
            self.image = Image.open(io.BytesIO(data), formats=[PILLOW_NAMES[fmt]])
        except Exception as exc:
            raise DecodeError(path, _reason(exc)) from None
        width, height = self.image.size
        if width * height > limits.max_pixels:
            raise self._too_big(limits)
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
        try:
            frames = getattr(self.image, "n_frames", 1) if fmt in ANIMATABLE else 1
            if frames > limits.max_frames:
                raise InputRejected(path, f"{frames} frames exceeds max_frames {limits.max_frames}")
            # PNG reads its eXIf chunk by loading the image: only after the size check.
            self.exif = self.image.getexif()
        except InputRejected:
            raise
        except _BOMB as exc:  # a later frame larger than the first (GIF frame extents)
            raise self._too_big(limits, exc) from None
        except MemoryError:  # PNG decodes the whole image to find its EXIF
            raise DecodeError(path, "out of memory (worker_memory limit)") from None
        except Exception as exc:
            raise DecodeError(path, _reason(exc)) from None
        # HEIF decoders apply irot/imir themselves; their EXIF orientation is informative.
        orientation = 1 if fmt in ("heif", "avif") else self.exif.get(_ORIENTATION, 1)
        self.orientation = orientation if orientation in range(1, 9) else 1
        if self.orientation >= 5:
            width, height = height, width
        when, date_source = _exif_date(self.exif) or (
            datetime.fromtimestamp(mtime if mtime is not None else _mtime(path)),
            "file modification time",
        )
        self.facts = Facts(
            path=path,
            size_bytes=len(data),
            format=fmt,
            width=width,
            height=height,
            frames=frames,
            orientation=self.orientation,
            date=when,
            date_source=date_source,
            content_hash=content_hash or hashlib.sha256(data).hexdigest(),
        )
        self.limits = limits
        # Pillow reads neither GIF's ICC profile nor its XMP (application extensions).
        self._gif_icc, self._gif_xmp = gif_metadata(data) if fmt == "gif" else (None, None)

    def _too_big(self, limits: DecodeLimits, exc: BaseException | None = None) -> InputRejected:
        # Pillow's own check may have fired on a frame larger than the header's size.
        found = _BOMB_PIXELS.search(str(exc)) if exc is not None else None
        w, h = getattr(getattr(self, "image", None), "size", (0, 0))
        pixels = f"{found[1]} pixels" if found else f"{w * h} pixels" if w else "image"
        return InputRejected(self.path, f"{pixels} exceeds max_pixels {limits.max_pixels}")

    def decode(self, need: tuple[int, int] | None = None) -> Picture:
        """Decode the pixels once. ``need`` is the smallest upright size any output needs;
        JPEG then decodes at a reduced DCT scale that still covers ``DRAFT_GAP`` times it
        (shrink on load, leaving the resampler a real reduction to do)."""
        im = self.image
        try:
            if need is not None and self.facts.format == "jpeg":
                if self.orientation >= 5:
                    need = (need[1], need[0])
                wanted = (need[0] * DRAFT_GAP, need[1] * DRAFT_GAP)
                im.draft(im.mode if im.mode in ("RGB", "L") else "RGB", wanted)
            frames, durations = self._frames(im)
        except _BOMB as exc:
            raise self._too_big(self.limits, exc) from None
        except MemoryError:
            raise DecodeError(self.path, "out of memory (worker_memory limit)") from None
        except Exception as exc:
            raise DecodeError(self.path, _reason(exc)) from None
        xmp = im.info.get("xmp") or self._gif_xmp
        return Picture(
            frames=frames,
            source_format=self.facts.format,
            durations=durations,
            loop=im.info.get("loop"),
            icc=im.info.get("icc_profile") or self._gif_icc,
            exif=self.exif,
            xmp=xmp.encode() if isinstance(xmp, str) else xmp,
            orientation=self.orientation,
        )

    def _frames(self, im: Image.Image) -> tuple[list[Image.Image], list[int]]:
        if self.facts.frames <= 1:
            im.load()
            return [_plain(im)], []
        frames, durations = [], []
        for index in range(self.facts.frames):
            im.seek(index)
            frame = im.convert("RGBA")
            if frames and frame.size != frames[0].size:
                # A GIF frame may reach past the logical screen and Pillow then grows the
                # canvas; viewers clip to the screen, and encoders need one size for all.
                frame = frame.crop((0, 0, *frames[0].size))
            frames.append(_plain(frame))
            durations.append(int(im.info.get("duration", 100) or 100))
        return frames, durations


def _plain(im: Image.Image) -> Image.Image:
    """The frame as a standalone image with no metadata attached: what we write out is
    decided by the metadata policy alone, never by what a plugin left in ``info``."""
    # Otherwise the same pixels in a new Image: replacing ``info`` on ``im`` itself would
    # drop the source's ICC profile and XMP before decode() reads them (PNG, BMP, ...).
    out = im.copy() if im.readonly or getattr(im, "fp", None) is not None else im._new(im.im)
    out.info = {k: im.info[k] for k in ("transparency",) if k in im.info}
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if text.startswith("image file is truncated"):
        return "file is truncated"
    if text.startswith("cannot identify image file"):
        return "not a valid image of its format"
    return text.splitlines()[0][:200]
