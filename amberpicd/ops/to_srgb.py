"""to_srgb: convert pixels from their embedded ICC profile to sRGB."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Literal

from amberpicd.ops._common import open_profile, workable
from amberpicd.ops.base import Operation, Size

if TYPE_CHECKING:
    from PIL import Image, ImageCms

    from amberpicd.imaging.picture import Picture

# Profile colour space → the pixel mode it describes (without alpha).
SPACE_MODES = {"RGB": "RGB", "CMYK": "CMYK", "GRAY": "L"}


def _intent(name: str) -> tuple[ImageCms.Intent, ImageCms.Flags]:
    from PIL import ImageCms

    if name == "relative":
        return ImageCms.Intent.RELATIVE_COLORIMETRIC, ImageCms.Flags.BLACKPOINTCOMPENSATION
    return ImageCms.Intent.PERCEPTUAL, ImageCms.Flags.NONE


@cache
def srgb_profile() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@cache
def srgb_icc() -> bytes:
    """The bytes of the sRGB profile outputs are tagged with after conversion."""
    return srgb_profile().tobytes()


@cache
def _probe() -> Image.Image:
    from PIL import Image

    # A gray ramp, the primaries and secondaries, and some mixed colours.
    values = [0, 1, 16, 50, 100, 128, 160, 200, 240, 254, 255]
    colors = [(v, v, v) for v in values]
    colors += [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    colors += [(255, 0, 255), (200, 60, 30), (30, 120, 220), (90, 200, 120), (128, 0, 64)]
    return Image.frombytes("RGB", (len(colors), 1), bytes(c for rgb in colors for c in rgb))


def is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    """True when ``profile`` maps colours to sRGB unchanged (±1), whatever its name."""
    if profile.profile.xcolor_space.strip() != "RGB":
        return False
    from PIL import ImageCms

    try:
        transform = ImageCms.buildTransform(
            profile, srgb_profile(), "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC
        )
        out = transform.apply(_probe())
    except ImageCms.PyCMSError:
        return False
    before, after = _probe().tobytes(), out.tobytes()
    return all(abs(a - b) <= 1 for a, b in zip(before, after, strict=True))


class ToSrgb(Operation):
    """Convert from the embedded ICC profile (RGB, CMYK or gray) to sRGB.

    The result is RGB (RGBA when the source has alpha) tagged with an sRGB profile.
    Untagged images and images already in sRGB are left as they are, except that CMYK
    always becomes RGB. An unreadable profile, or one that does not match the pixels,
    is dropped and the pixels are read as sRGB (as browsers do).
    """

    name = "to_srgb"

    intent: Literal["perceptual", "relative"] = "perceptual"

    def apply(self, picture: Picture) -> Picture:
        from PIL import ImageCms

        profile = open_profile(picture.icc)
        space = profile.profile.xcolor_space.strip() if profile is not None else ""
        frames = [workable(f) for f in picture.frames]
        color_modes = {f.mode.removesuffix("A") for f in frames}
        if profile is None or color_modes != {SPACE_MODES.get(space)}:
            untagged = picture.with_(icc=None) if picture.icc is not None else picture
            if "CMYK" in color_modes:
                return untagged.map(lambda im: im.convert("RGB"))
            return untagged
        if space == "RGB" and is_srgb(profile):
            return picture
        intent, flags = _intent(self.intent)
        try:
            transform = ImageCms.buildTransform(
                profile, srgb_profile(), SPACE_MODES[space], "RGB", intent, flags
            )
        except ImageCms.PyCMSError as exc:
            raise ValueError(f"cannot convert the {space} ICC profile to sRGB: {exc}") from None

        def one(im: Image.Image) -> Image.Image:
            if im.mode in ("RGBA", "LA"):
                # Alpha is not colour: convert the colour bands and put alpha back.
                out = transform.apply(im.convert(im.mode[:-1]))
                out.putalpha(im.getchannel("A"))
                return out
            return transform.apply(im)

        return picture.with_(frames=[one(f) for f in frames], icc=srgb_icc())

    def output_size(self, size: Size) -> Size | None:
        return size
