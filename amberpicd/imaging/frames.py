"""Picture → the frames an encoder writes: upright, in a mode the output format takes
(8 bits unless it has 16, transparency flattened onto ``background`` where it has none),
and the ICC profile to embed, or the pixels converted to sRGB when none can be.

Touches no files; ``imaging.encode`` writes what this prepares.
"""

from __future__ import annotations

from PIL import Image

from amberpicd.imaging.picture import Picture
from amberpicd.ops.auto_orient import AutoOrient
from amberpicd.ops.background import flatten
from amberpicd.ops.encode import ANIMATED_FORMATS, Encode
from amberpicd.ops.to_srgb import ToSrgb

_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# Modes each writer is given as they are; others are converted by _fit_mode.
_KEEP_MODES = {
    "jpeg": frozenset({"L", "RGB"}),
    "png": frozenset({"1", "L", "LA", "I;16", "I", "RGB", "RGBA", "P"}),
    "webp": frozenset({"RGB", "RGBA"}),
    "avif": frozenset({"L", "RGB", "RGBA"}),
    "tiff": frozenset({"1", "L", "LA", "I;16", "I", "F", "RGB", "RGBA", "CMYK", "P"}),
    "gif": frozenset({"1", "L", "P", "RGB", "RGBA"}),  # Pillow quantizes RGB(A) itself
}
# Writers that honour a transparency key in info (palette index, tRNS colour).
_KEYED_ALPHA = frozenset({"png", "gif"})
_ALPHA_BANDS = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_NO_ICC = frozenset({"gif"})  # Pillow's GIF writer has no colour profile (nor EXIF, XMP)


def prepare(
    picture: Picture, spec: Encode, with_icc: bool
) -> tuple[list[Image.Image], bytes | None]:
    """The frames to write, in modes the format takes, and the ICC profile to embed.

    When the output will carry no profile (``icc`` not kept, a format with no place for
    one, or a profile that does not fit the written mode), the pixels are converted from
    the source's profile to sRGB first: an untagged file is read as sRGB, so the colours
    a viewer shows stay the same.
    """
    fmt = spec.format
    if picture.orientation != 1:
        # The orientation tag is never written, so pixels must be upright by now.
        picture = AutoOrient().apply(picture)
    if picture.mode == "CMYK" and fmt != "tiff":
        picture = ToSrgb().apply(picture)  # through the CMYK profile when there is one
    frames = _frames(picture, spec)
    icc = picture.icc if with_icc and fmt not in _NO_ICC else None
    if icc is not None and icc[16:20] != _icc_space(frames[0].mode):
        icc = None  # e.g. a gray profile on frames WebP made RGB: it would not apply
    if icc is None and picture.icc is not None:
        shown = picture if len(frames) > 1 else picture.with_(frames=picture.frames[:1])
        try:
            converted = ToSrgb().apply(shown)
        except ValueError:  # LittleCMS cannot use the profile: viewers ignore it too
            converted = shown.with_(icc=None)
        if converted.icc is not None:  # tagged sRGB: the pixels really were converted
            frames = _frames(converted, spec)
    return frames, icc


def _frames(picture: Picture, spec: Encode) -> list[Image.Image]:
    animate = picture.is_animated and spec.format in ANIMATED_FORMATS
    sources = picture.frames if animate else picture.frames[:1]
    return [_fit_mode(im, spec.format, spec.background) for im in sources]


def _icc_space(mode: str) -> bytes:
    """The colour space (ICC header bytes 16-20) a profile for ``mode`` pixels has."""
    if mode == "CMYK":
        return b"CMYK"
    return b"GRAY" if Image.getmodebase(mode) == "L" else b"RGB "


def _fit_mode(im: Image.Image, fmt: str, background: str) -> Image.Image:
    """``im`` in a mode the format's writer takes, 8 bits unless the format has 16."""
    alpha = im.has_transparency_data
    if fmt == "jpeg":
        if alpha:
            im = flatten(im, background)
        return _convert(im, "L" if Image.getmodebase(im.mode) == "L" else "RGB")
    keyed = alpha and im.mode not in _ALPHA_BANDS
    if im.mode in _KEEP_MODES[fmt] and not (keyed and fmt not in _KEYED_ALPHA):
        return im
    gray = Image.getmodebase(im.mode) == "L"
    target = ("LA" if gray else "RGBA") if alpha else ("L" if gray else "RGB")
    if target not in _KEEP_MODES[fmt]:
        target = "RGBA" if alpha else "RGB"
    return _convert(im, target)


def _convert(im: Image.Image, mode: str) -> Image.Image:
    if im.mode == mode:
        return im
    if im.mode in _SIXTEEN_BIT:
        im = _eight_bit(im)
    return im.convert(mode)


def _eight_bit(im: Image.Image) -> Image.Image:
    """Deep gray to L by scaling, not clipping (Pillow's convert clips at 255)."""
    if im.mode == "F":
        return im.convert("L")
    wide = im.convert("I") if im.mode != "I" else im
    _, high = wide.getextrema()
    if isinstance(high, (int, float)) and high > 255:
        wide = wide.point(lambda v: v / 256)
    return wide.convert("L")
