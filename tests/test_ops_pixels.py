"""Pixel operations: watermark, sharpen, to_srgb, grayscale, background."""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

import images
import pytest
from PIL import Image, ImageChops, ImageCms, ImageFilter, ImageSequence
from pydantic import ValidationError

from amberpicd.imaging.picture import Picture
from amberpicd.ops.background import flatten
from amberpicd.ops.base import Operation
from amberpicd.ops.registry import load_all, step_name
from amberpicd.ops.to_srgb import is_srgb, srgb_icc


def parse(item: object) -> Operation:
    name = step_name(item)
    assert name is not None
    op = load_all()[name].model_validate(item)
    assert isinstance(op, Operation)
    return op


def pic(im: Image.Image, **kw: object) -> Picture:
    return Picture(frames=[im], **kw)


def changed_box(a: Image.Image, b: Image.Image) -> tuple[int, int, int, int] | None:
    return ImageChops.difference(a.convert("RGBA"), b.convert("RGBA")).getbbox(alpha_only=False)


# --- ICC profiles written by hand (Pillow can only create sRGB, LAB and XYZ) ---------------

D50 = (0.9642, 1.0, 0.8249)
SRGB_COLORANTS = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def _s15(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def icc_profile(space: str, colorants=None, gamma: float = 2.2, desc: str = "test") -> bytes:
    """A minimal ICC v2 matrix/TRC display profile (``space`` RGB) or gray profile."""
    text = desc.encode()
    tags = {
        b"desc": _pad(
            b"desc\0\0\0\0"
            + struct.pack(">I", len(text) + 1)
            + text
            + b"\0"
            + struct.pack(">IIHB", 0, 0, 0, 0)
            + b"\0" * 67
        ),
        b"wtpt": b"XYZ \0\0\0\0" + _s15(*D50),
    }
    curve = _pad(b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)))
    if space == "GRAY":
        tags[b"kTRC"] = curve
    else:
        for channel, xyz in zip(b"rgb", colorants, strict=True):
            tags[bytes([channel]) + b"XYZ"] = b"XYZ \0\0\0\0" + _s15(*xyz)
            tags[bytes([channel]) + b"TRC"] = curve
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags.items():
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = struct.pack(
        ">I4sI4s4s4s",
        offset + len(data),
        b"\0" * 4,
        0x02100000,
        b"mntr",
        f"{space:<4}".encode(),
        b"XYZ ",
    )
    header += b"\0" * 12 + b"acsp" + b"\0" * 28 + _s15(*D50) + b"\0" * 48
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


# Red and green primaries swapped: device red is sRGB green, unmistakably.
SWAPPED = icc_profile(
    "RGB", (SRGB_COLORANTS[1], SRGB_COLORANTS[0], SRGB_COLORANTS[2]), desc="swapped"
)


def _palette_with_transparency() -> Image.Image:
    """A palette image with a transparent index, as a GIF decodes (right half clear)."""
    buf = io.BytesIO()
    images.upright(40, 30, "RGBA").save(buf, "GIF")
    with Image.open(buf) as im:
        im.load()
        assert im.mode == "P" and "transparency" in im.info
        return im


def _solid(color: tuple[int, ...], mode: str = "RGB", size: tuple[int, int] = (16, 16)):
    return Image.new(mode, size, color)


# --- watermark ---------------------------------------------------------------------------


def test_watermark_text_changes_only_the_chosen_corner() -> None:
    base = images.upright(400, 300)
    for position, (qx, qy) in {
        "bottom-right": (1, 1),
        "top-left": (0, 0),
        "top-right": (1, 0),
        "bottom-left": (0, 1),
    }.items():
        out = parse({"watermark": {"text": "© Test", "position": position}}).apply(pic(base))
        assert out.mode == "RGB" and out.size == base.size
        box = changed_box(base, out.image)
        assert box is not None, position
        left, top, right, bottom = box
        assert (left >= 200, top >= 150) == (bool(qx), bool(qy)), (position, box)
        assert (right <= 200, bottom <= 150) == (not qx, not qy), (position, box)


def test_watermark_shorthand_and_margin() -> None:
    op = parse({"watermark": "© Me"})
    assert op.text == "© Me" and op.position == "bottom-right"
    base = _solid((40, 40, 40), size=(400, 300))
    box = changed_box(base, op.apply(pic(base)).image)
    assert box is not None
    # Default margin: 2% of the shorter side (6 px); a little slack for antialiasing.
    assert 400 - 8 <= box[2] <= 400 - 4 and 300 - 8 <= box[3] <= 300 - 4


def test_white_text_is_visible_on_white() -> None:
    base = _solid((255, 255, 255), size=(400, 300))
    out = parse({"watermark": {"text": "WHITE", "opacity": 1}}).apply(pic(base))
    darkest, _ = out.image.convert("L").getextrema()
    assert darkest < 200  # the outline shows where white on white would not


def test_watermark_size_scales_the_text() -> None:
    base = _solid((40, 40, 40), size=(800, 600))
    small = changed_box(
        base, parse({"watermark": {"text": "Hi", "size": 0.05}}).apply(pic(base)).image
    )
    big = changed_box(
        base, parse({"watermark": {"text": "Hi", "size": 0.2}}).apply(pic(base)).image
    )
    assert small and big
    assert (big[3] - big[1]) > 3 * (small[3] - small[1])


def test_watermark_long_text_stays_inside() -> None:
    base = _solid((40, 40, 40), size=(200, 150))
    op = parse({"watermark": {"text": "a very long copyright line " * 3, "size": 0.3}})
    box = changed_box(base, op.apply(pic(base)).image)
    assert box is not None and box[0] >= 0 and box[2] <= 200


def test_watermark_keeps_mode_and_alpha() -> None:
    rgba = images.upright(200, 100, "RGBA")
    out = parse({"watermark": {"text": "x", "position": "top-left"}}).apply(pic(rgba))
    assert out.mode == "RGBA"
    assert out.image.getchannel("A").getpixel((190, 90)) == 0  # far corner still transparent
    gray = parse({"watermark": "x"}).apply(pic(images.upright(200, 100, "L")))
    assert gray.mode == "L"
    cmyk = images.upright(200, 100).convert("CMYK")
    out = parse({"watermark": {"text": "x", "position": "top-left"}}).apply(pic(cmyk))
    assert out.mode == "CMYK"
    # Only the patch under the mark is touched; the rest is bit-exact (no colour round trip).
    assert out.image.crop((100, 50, 200, 100)).tobytes() == cmyk.crop((100, 50, 200, 100)).tobytes()
    assert out.image.tobytes() != cmyk.tobytes()
    palette = parse({"watermark": "x"}).apply(pic(images.upright(200, 100).convert("P")))
    assert palette.mode == "RGB"


def test_watermark_image_mark(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (50, 25), (0, 0, 255, 255)).save(logo)
    base = _solid((255, 255, 255), size=(400, 300))
    op = parse({"watermark": {"image": str(logo), "position": "top-right", "opacity": 1}})
    out = op.apply(pic(base))
    box = changed_box(base, out.image)
    assert box is not None
    # 20% of the width (80 px) at the top-right, inside a 6 px margin.
    assert box == (400 - 6 - 80, 6, 400 - 6, 6 + 40)
    assert out.image.getpixel((400 - 6 - 40, 20)) == (0, 0, 255)
    half = parse({"watermark": {"image": str(logo), "opacity": 0.5}}).apply(pic(base))
    r, _, b = half.image.getpixel((400 - 6 - 40, 300 - 6 - 20))
    assert 120 <= r <= 135 and b == 255


def test_watermark_on_every_frame(tmp_path: Path) -> None:
    path = images.animated(tmp_path / "a.gif", frames=3, size=(64, 48))
    with Image.open(path) as im:
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
    out = parse({"watermark": {"text": "W", "size": 0.3}}).apply(Picture(frames=frames))
    assert len(out.frames) == 3
    assert all(changed_box(a, b) is not None for a, b in zip(frames, out.frames, strict=True))


def test_watermark_missing_files_are_value_errors(tmp_path: Path) -> None:
    base = pic(images.upright(100, 100))
    op = parse({"watermark": {"image": str(tmp_path / "nope.png")}})
    with pytest.raises(ValueError, match=r"cannot read watermark image .*nope\.png"):
        op.apply(base)
    op = parse({"watermark": {"text": "x", "font": str(tmp_path / "nope.ttf")}})
    with pytest.raises(ValueError, match="cannot load font"):
        op.apply(base)


def test_watermark_expands_home_without_touching_files() -> None:
    op = parse({"watermark": {"image": "~/does-not-exist/logo.png"}})
    assert op.image == Path.home() / "does-not-exist" / "logo.png"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"text": ""},
        {"text": "a", "image": "b.png"},
        {"text": "a", "opacity": 1.5},
        {"text": "a", "opacity": -0.1},
        {"text": "a", "size": 0},
        {"text": "a", "margin": 0.5},
        {"text": "a", "position": "middle"},
        {"text": "a", "color": "not-a-colour"},
        {"image": "b.png", "color": "red"},
        {"text": "a", "colour": "red"},
    ],
)
def test_watermark_rejects_bad_options(options: dict) -> None:
    with pytest.raises(ValidationError):
        parse({"watermark": options})


# --- sharpen -----------------------------------------------------------------------------


def test_sharpen_increases_edge_contrast() -> None:
    step = Image.new("RGB", (80, 40), (40, 40, 40))
    step.paste((200, 200, 200), (40, 0, 80, 40))
    soft = step.filter(ImageFilter.GaussianBlur(2))
    op = parse("sharpen")
    assert (op.radius, op.percent, op.threshold) == (1.0, 60, 2)
    out = parse({"sharpen": {"radius": 2, "percent": 150}}).apply(pic(soft)).image
    assert out.mode == "RGB" and out.size == soft.size

    def steepest(im: Image.Image) -> int:
        row = [im.getpixel((x, 20))[0] for x in range(80)]
        return max(b - a for a, b in itertools.pairwise(row))

    assert steepest(out) > 1.3 * steepest(soft)
    # Overshoot on both sides of the edge is the mark of an unsharp mask.
    assert out.getpixel((36, 20))[0] < 40 and out.getpixel((43, 20))[0] > 200


def test_sharpen_keeps_alpha_and_handles_palette() -> None:
    rgba = images.upright(100, 80, "RGBA").filter(ImageFilter.GaussianBlur(1))
    out = parse("sharpen").apply(pic(rgba)).image
    assert out.mode == "RGBA"
    assert out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    palette = images.upright(100, 80).convert("P")
    assert parse("sharpen").apply(pic(palette)).mode == "RGB"


@pytest.mark.parametrize(
    "item", [{"sharpen": {"radius": 0}}, {"sharpen": {"percent": -1}}, {"sharpen": 2}]
)
def test_sharpen_rejects_bad_options(item) -> None:
    with pytest.raises(ValidationError):
        parse(item)


# --- to_srgb -----------------------------------------------------------------------------


def test_to_srgb_converts_through_the_embedded_profile() -> None:
    picture = pic(_solid((255, 0, 0)), icc=SWAPPED)
    out = parse("to_srgb").apply(picture)
    assert out.image.getpixel((0, 0)) == (0, 255, 0)
    assert out.icc == srgb_icc()
    assert is_srgb(ImageCms.ImageCmsProfile(io.BytesIO(out.icc)))
    assert picture.image.getpixel((0, 0)) == (255, 0, 0)  # input untouched


def test_to_srgb_on_a_real_tagged_jpeg(tmp_path: Path) -> None:
    path = images.jpeg(tmp_path / "p.jpg", size=(160, 120), icc=SWAPPED)
    with Image.open(path) as im:
        picture = pic(im.convert("RGB"), icc=im.info["icc_profile"])
    assert images.corner_is_marker(picture.image)  # red as stored
    out = parse({"to_srgb": {"intent": "relative"}}).apply(picture)
    r, g, b = out.image.getpixel((1, 1))
    assert g > 200 and r < 60 and b < 60  # the marker is green in sRGB


def test_to_srgb_keeps_alpha() -> None:
    im = _solid((255, 0, 0, 100), "RGBA")
    out = parse("to_srgb").apply(pic(im, icc=SWAPPED))
    assert out.mode == "RGBA" and out.image.getpixel((0, 0)) == (0, 255, 0, 100)


def test_to_srgb_gray_profile_becomes_rgb() -> None:
    linear_gray = icc_profile("GRAY", gamma=1.0)
    out = parse("to_srgb").apply(pic(_solid(128, "L"), icc=linear_gray))
    assert out.mode == "RGB" and out.icc == srgb_icc()
    r, g, b = out.image.getpixel((0, 0))
    assert r == g == b and 180 <= r <= 195  # linear 50% is about 188 in sRGB


def test_to_srgb_leaves_srgb_and_untagged_alone() -> None:
    tagged = pic(images.upright(32, 32), icc=srgb_icc())
    assert parse("to_srgb").apply(tagged) is tagged
    # Profiles are judged by what they do, not their name: sRGB primaries with a plain
    # 2.2 gamma (instead of the sRGB curve) darken the shadows, so they get converted.
    lookalike = icc_profile("RGB", SRGB_COLORANTS, gamma=2.2, desc="sRGB")
    assert not is_srgb(ImageCms.ImageCmsProfile(io.BytesIO(lookalike)))
    untagged = pic(images.upright(32, 32))
    assert parse("to_srgb").apply(untagged) is untagged


def test_to_srgb_drops_unreadable_or_mismatched_profiles() -> None:
    broken = pic(images.upright(32, 32), icc=b"not a profile" * 20)
    out = parse("to_srgb").apply(broken)
    assert out.icc is None and out.image.tobytes() == broken.image.tobytes()
    mismatched = parse("to_srgb").apply(pic(_solid(100, "L"), icc=SWAPPED))
    assert mismatched.icc is None and mismatched.mode == "L"


def test_to_srgb_turns_cmyk_into_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
        out = parse("to_srgb").apply(pic(im.copy()))
    assert out.mode == "RGB"
    r, g, b = out.image.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60


def test_to_srgb_rejects_unknown_intent() -> None:
    with pytest.raises(ValidationError):
        parse({"to_srgb": {"intent": "absolute"}})


# --- grayscale ---------------------------------------------------------------------------


def test_grayscale_modes_and_profile() -> None:
    out = parse("grayscale").apply(pic(images.upright(40, 30), icc=SWAPPED))
    assert out.mode == "L" and out.icc is None
    rgba = images.upright(40, 30, "RGBA")
    out = parse("grayscale").apply(pic(rgba))
    assert out.mode == "LA"
    assert out.image.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    assert parse("grayscale").apply(pic(_palette_with_transparency())).mode == "LA"
    gray_icc = icc_profile("GRAY")
    already = pic(_solid(7, "L"), icc=gray_icc)
    assert parse("grayscale").apply(already) is already


def test_grayscale_takes_no_options() -> None:
    with pytest.raises(ValidationError):
        parse({"grayscale": {"amount": 1}})


# --- background --------------------------------------------------------------------------


def test_background_flattens_transparency(tmp_path: Path) -> None:
    path = images.png(tmp_path / "a.png", size=(64, 48), mode="RGBA")
    with Image.open(path) as im:
        picture = pic(im.copy())
    out = parse({"background": "#ff0000"}).apply(picture)
    assert out.mode == "RGB"
    assert out.image.getpixel((60, 40)) == (255, 0, 0)  # right half was transparent
    assert images.corner_is_marker(out.image)
    assert parse("background").color == "white"
    white = parse("background").apply(picture)
    assert white.image.getpixel((60, 40)) == (255, 255, 255)


def test_background_blends_translucent_pixels() -> None:
    im = _solid((0, 0, 0, 128), "RGBA")
    r, g, b = parse({"background": "white"}).apply(pic(im)).image.getpixel((0, 0))
    assert r == g == b and 125 <= r <= 129


def test_flatten_function() -> None:
    opaque = images.upright(20, 20)
    assert flatten(opaque, "white") is opaque
    la = Image.new("LA", (4, 4), (0, 0))
    assert flatten(la, "white").mode == "L" and flatten(la, "white").getpixel((0, 0)) == 255
    red = flatten(la, "red")
    assert red.mode == "RGB" and red.getpixel((0, 0)) == (255, 0, 0)
    flat = flatten(_palette_with_transparency(), "#00ff00")
    assert flat.mode == "RGB" and flat.getpixel((39, 29)) == (0, 255, 0)
    assert images.corner_is_marker(flat)


def test_background_rejects_bad_colour() -> None:
    with pytest.raises(ValidationError):
        parse({"background": "nocolour"})
