"""Real test images, made on the fly with Pillow (and pillow-heif for HEIC).

Pixels are not flat: a gradient plus a marker block in the top-left corner of the
*upright* image, so tests can check orientation by pixel colour.
"""

from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
from PIL import Image, ImageDraw

pillow_heif.register_heif_opener()

MARKER = (255, 0, 0)  # red block in the upright image's top-left corner
GPS_IFD = 0x8825
ORIENTATION = 0x0112
DATETIME_ORIGINAL = 0x9003
EXIF_IFD = 0x8769

# For each EXIF orientation, the transpose that turns an upright image into the stored one
# (the inverse of what a viewer applies).
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A gradient image with a red marker block at the top-left."""
    base = Image.linear_gradient("L")
    grad = base.resize((width, height))
    across = base.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    im = Image.merge("RGB", (grad, across, Image.new("L", (width, height), 96)))
    block = max(4, min(width, height) // 8)
    ImageDraw.Draw(im).rectangle((0, 0, block, block), fill=MARKER)
    if mode == "RGBA":
        im = im.convert("RGBA")
        alpha = Image.new("L", (width, height), 255)
        ImageDraw.Draw(alpha).rectangle((width // 2, 0, width, height), fill=0)
        im.putalpha(alpha)
    elif mode != "RGB":
        im = im.convert(mode)
    return im


def exif_block(
    orientation: int = 1,
    gps: bool = False,
    date: str | None = "2024:05:06 07:08:09",
    camera: bool = True,
    description: str | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    if description:
        exif[0x010E] = description  # ImageDescription: makes otherwise equal files differ
    if camera:
        exif[0x010F] = "TestMake"
        exif[0x0110] = "TestModel"
    exif[0x8298] = "(c) Test Owner"
    exif[0x013B] = "Test Artist"
    if date:
        exif[0x0132] = date
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = date
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return exif


def stored(im: Image.Image, orientation: int) -> Image.Image:
    """The pixels as a camera would store them for ``orientation``."""
    op = _STORE[orientation]
    return im.transpose(op) if op is not None else im.copy()


def jpeg(
    path: Path,
    size: tuple[int, int] = (640, 480),
    orientation: int = 1,
    gps: bool = False,
    quality: int = 90,
    icc: bytes | None = None,
    **exif_kw: object,
) -> Path:
    """A JPEG whose *upright* size is ``size``, stored rotated per ``orientation``."""
    im = stored(upright(*size), orientation)
    kw: dict[str, object] = {"exif": exif_block(orientation, gps, **exif_kw).tobytes()}
    if icc:
        kw["icc_profile"] = icc
    im.save(path, "JPEG", quality=quality, **kw)
    return path


def heic(path: Path, size: tuple[int, int] = (640, 480), gps: bool = True) -> Path:
    """An iPhone-style HEIC: upright pixels (HEIF carries orientation in irot), EXIF with GPS."""
    im = upright(*size)
    exif = exif_block(1, gps)
    im.save(path, "HEIF", quality=80, exif=exif.tobytes())
    return path


def png(path: Path, size: tuple[int, int] = (320, 240), mode: str = "RGBA") -> Path:
    upright(*size, mode=mode).save(path, "PNG")
    return path


def animated(path: Path, fmt: str = "GIF", frames: int = 3, size: tuple[int, int] = (64, 48)):
    ims = [upright(*size).rotate(i * 30) for i in range(frames)]
    ims[0].save(path, fmt, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return path


def encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def corner_is_marker(im: Image.Image, tolerance: int = 60) -> bool:
    """True when the top-left corner of ``im`` is (roughly) the red marker."""
    px = im.convert("RGB").getpixel((1, 1))
    return all(abs(a - b) <= tolerance for a, b in zip(px, MARKER, strict=True))
