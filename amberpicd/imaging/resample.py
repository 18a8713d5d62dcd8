"""Resampling: libvips' vectorised resampler when pyvips is installed, Pillow's otherwise.

Pillow's resampler is the largest cost of a photo pipeline (a 12 MP Lanczos downscale takes
longer than decoding it); libvips does the same convolution several times faster. Images stay
Pillow images: pixels go to libvips without a copy (Pillow's Arrow export gives the address of
a contiguous image) and come back as a new Pillow image. The accelerator is optional: without
pyvips, or for anything it does not handle the same way, Pillow resamples as before.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from PIL import Image

Size = tuple[int, int]
Box = tuple[float, float, float, float]

FILTERS: dict[str, Image.Resampling] = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
# libvips kernels with the same support as Pillow's filters (Pillow's BICUBIC is a=-0.5,
# libvips' cubic is Catmull-Rom, a=-0.5; both scale the kernel when shrinking).
KERNELS = {"lanczos": "lanczos3", "bicubic": "cubic", "bilinear": "linear"}
# Pillow: a box reduce first, then the filter, for big downscales: within ~55 dB PSNR of the
# plain filter (invisible) and 2-8x faster. libvips' resize does the same with its own gap.
REDUCING_GAP = 3.0

USE_ACCELERATOR = True  # tests turn it off to exercise the Pillow path
_vips: Any = None  # the pyvips module once loaded, False when it cannot be


def accelerator() -> Any:
    """The pyvips module, imported on first use (so processes that never resample never
    load libvips), or None when it is not installed or not usable here."""
    global _vips
    if not USE_ACCELERATOR:
        return None
    if _vips is None:
        try:
            import pyvips

            # Pixels are borrowed from Pillow: nothing may outlive one call in a cache.
            pyvips.cache_set_max(0)
            # libvips reports every resize step at INFO: noise in our log (-j 0 runs here).
            logging.getLogger("pyvips").setLevel(logging.WARNING)
            _vips = pyvips
        except Exception:  # ImportError, or OSError when libvips itself fails to load
            _vips = False
    return _vips or None


def name() -> str:
    """Which resampler runs here, for logs and benchmarks."""
    vips = accelerator()
    return f"libvips {vips.version(0)}.{vips.version(1)}.{vips.version(2)}" if vips else "Pillow"


def resample(im: Image.Image, size: Size, method: str, box: Box | None = None) -> Image.Image:
    """``im`` (or its ``box`` region, in pixels) resampled to ``size`` with ``method``
    (lanczos, bicubic, bilinear or nearest). Modes other than L, RGB and RGBA, enlarging,
    and nearest-neighbour always use Pillow."""
    box = box if box is not None else (0.0, 0.0, float(im.width), float(im.height))
    shrinking = size[0] <= box[2] - box[0] and size[1] <= box[3] - box[1]
    vips = accelerator() if shrinking else None  # enlarging: rare, Pillow is the reference
    if vips is not None and method in KERNELS and im.mode in _WORKING:
        try:
            out = _with_vips(vips, im, size, method, box)
        except vips.Error:  # whatever libvips cannot do, Pillow still may
            out = None
        if out is not None:
            return out
    return _with_pillow(im, size, method, box)


def _with_pillow(im: Image.Image, size: Size, method: str, box: Box) -> Image.Image:
    # Pillow's reduce has no 16-bit integer modes ("image has wrong mode"): those, and
    # nearest-neighbour, resize directly.
    plain = method == "nearest" or im.mode.startswith("I;16")
    gap = None if plain else REDUCING_GAP
    return im.resize(size, FILTERS[method], box=box, reducing_gap=gap)


# The mode each supported mode is resampled in (alpha premultiplied, as Pillow's own resize
# does), the bands libvips sees in it (Pillow stores RGB as RGBX, 4 bytes a pixel), and how
# its bytes unpack into the original mode (RGBa into RGBA unpremultiplies).
_WORKING = {"L": "L", "RGB": "RGB", "RGBA": "RGBa"}
_BANDS = {"L": 1, "RGB": 4, "RGBa": 4}
_RAW = {"L": "L", "RGB": "RGBX", "RGBA": "RGBa", "RGBa": "RGBa"}
_DIRECT = frozenset({"L", "RGB"})  # modes whose result libvips can write as Pillow keeps it


def _with_vips(vips: Any, im: Image.Image, size: Size, method: str, box: Box) -> Image.Image | None:
    left, top, right, bottom = (round(v) for v in box)  # sub-pixel offsets: below 1 px out
    width, height = right - left, bottom - top
    if size[0] > width or size[1] > height:
        return None  # the box was less than a pixel wider than the output
    mode = im.mode
    work = im if _WORKING[mode] == mode else im.convert(_WORKING[mode])
    source, keep = _borrow(vips, work)
    if (left, top, width, height) != (0, 0, work.width, work.height):
        source = source.crop(left, top, width, height)
    out = source.resize(size[0] / width, vscale=size[1] / height, kernel=KERNELS[method])
    if (out.width, out.height) != size:
        return None  # libvips rounded the size differently: let Pillow do it exactly
    if mode in _DIRECT:
        result = Image.new(mode, size)
        target, borrowed = _view(vips, result)
        if borrowed is not None:
            # libvips computes the resize straight into the new image's pixel memory: no
            # intermediate buffer, no copy (for RGB the pad byte is resampled too).
            out.write(target)
            del borrowed, keep
            return result
    data = out.write_to_memory()  # computes the resize; Pillow's pixels are read here
    del keep
    if mode == "RGB":  # map the RGBX bytes, then one copy into a fresh RGB image
        return Image.frombuffer("RGBX", size, data, "raw", "RGBX", 0, 1).convert("RGB")
    return Image.frombytes(mode, size, data, "raw", _RAW[mode])


def _borrow(vips: Any, im: Image.Image) -> tuple[Any, Any]:
    """A libvips image on ``im``'s own pixel memory when Pillow holds it in one block,
    else on a copy; and what must stay referenced while libvips reads it."""
    source, borrowed = _view(vips, im)
    if borrowed is not None:
        return source, borrowed
    data = im.tobytes("raw", _RAW[im.mode])
    return vips.Image.new_from_memory(data, im.width, im.height, _BANDS[im.mode], "uchar"), data


def _view(vips: Any, im: Image.Image) -> tuple[Any, Any]:
    """A libvips image on ``im``'s own pixel memory (readable and writable) and what must
    stay referenced while libvips uses it; (None, None) when Pillow does not hold the
    pixels in one block it can export (several blocks, or Pillow before 11.2)."""
    bands = _BANDS[im.mode]
    try:
        schema, array = im.__arrow_c_array__()
    except (ValueError, AttributeError):
        return None, None
    address = _arrow_data(array, im.width * im.height * bands)
    if address is None:
        return None, None
    data = (ctypes.c_ubyte * (im.width * im.height * bands)).from_address(address)
    view = vips.Image.new_from_memory(data, im.width, im.height, bands, "uchar")
    return view, (im, schema, array, data)


class _ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ArrowArray (a stable ABI)."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _arrow_data(capsule: Any, nbytes: int) -> int | None:
    """The address of the pixel bytes in an exported Pillow image, or None when the
    export is not the plain layout expected (then the caller copies instead)."""
    try:
        array = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
    except (ValueError, TypeError):
        return None
    if array.n_children == 1:  # multi-band: a fixed-size list of uint8 per pixel
        if array.offset != 0:
            return None
        array = array.children[0].contents
    elif array.n_children != 0:
        return None
    if array.n_buffers != 2 or array.offset != 0 or array.length != nbytes:
        return None
    return array.buffers[1] or None
