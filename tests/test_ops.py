"""Geometry operations: parsing from YAML forms, validation, pixels, and size planning."""

from __future__ import annotations

import images
import pytest
from PIL import Image, ImageSequence
from pydantic import ValidationError

from amberpicd.imaging.picture import Picture
from amberpicd.ops.base import Operation
from amberpicd.ops.registry import load_all, step_name


def parse(item: object) -> Operation:
    """Validate a pipeline item as the config loader does: by its operation name."""
    name = step_name(item)
    assert name is not None
    op = load_all()[name].model_validate(item)
    assert isinstance(op, Operation)
    return op


def pic(im: Image.Image, **kw: object) -> Picture:
    return Picture(frames=[im], **kw)


def test_every_operation_is_registered() -> None:
    names = set(load_all())
    expected = {"auto_orient", "resize", "crop", "rotate", "flip", "watermark"}
    expected |= {"sharpen", "to_srgb", "grayscale", "background"}
    assert expected <= names


def test_the_registry_lists_every_step_class_once() -> None:
    """ALL_STEPS is written by hand: a step class defined in an ops module but left out of
    it would be unknown to the config. Every concrete Step subclass there must be listed."""
    import importlib
    import inspect
    import pkgutil

    import amberpicd.ops
    from amberpicd.ops.base import Step
    from amberpicd.ops.registry import ALL_STEPS

    defined = set()
    for info in pkgutil.iter_modules(amberpicd.ops.__path__):
        module = importlib.import_module(f"amberpicd.ops.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Step) and cls.__module__ == module.__name__ and "name" in vars(cls):
                defined.add(cls)
    assert len(defined) >= 12  # control: the walk finds the real operations
    assert set(ALL_STEPS) == defined
    assert len(ALL_STEPS) == len(set(ALL_STEPS)) == len(load_all())


@pytest.mark.parametrize("item", ["auto_orient", {"auto_orient": None}, {"auto_orient": {}}])
def test_auto_orient_parses_bare_forms(item: object) -> None:
    assert parse(item).name == "auto_orient"


def test_auto_orient_rejects_options() -> None:
    with pytest.raises(ValidationError):
        parse({"auto_orient": {"force": True}})
    with pytest.raises(ValidationError):
        parse({"auto_orient": 1})


# --- auto_orient -------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_auto_orient_makes_every_orientation_upright(orientation: int) -> None:
    upright = images.upright(64, 48)
    stored = images.stored(upright, orientation)
    if orientation >= 5:
        assert stored.size == (48, 64)
    out = parse("auto_orient").apply(pic(stored, orientation=orientation))
    assert out.orientation == 1
    assert out.size == (64, 48)
    assert images.corner_is_marker(out.image)
    assert out.image.tobytes() == upright.tobytes()  # transposes are lossless


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_auto_orient_on_a_real_jpeg(tmp_path, orientation: int) -> None:
    path = images.jpeg(tmp_path / "in.jpg", size=(320, 240), orientation=orientation)
    with Image.open(path) as im:
        im.load()
        value = im.getexif()[images.ORIENTATION]
        assert not images.corner_is_marker(im)
        out = parse("auto_orient").apply(pic(im.copy(), orientation=value))
    assert out.size == (320, 240)
    assert images.corner_is_marker(out.image)


def test_auto_orient_leaves_input_frames_and_odd_values_alone() -> None:
    stored = images.stored(images.upright(40, 30), 6)
    before = stored.tobytes()
    picture = pic(stored, orientation=6)
    parse("auto_orient").apply(picture)
    assert stored.tobytes() == before and picture.orientation == 6
    odd = parse("auto_orient").apply(pic(stored, orientation=9))
    assert odd.orientation == 1 and odd.size == stored.size


# --- resize ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"width": 320}, (320, 240)),
        ({"height": 120}, (160, 120)),
        ({"width": 300, "height": 300}, (300, 225)),
        ({"width": 1000, "height": 120}, (160, 120)),
        ({"width": 200, "height": 200, "mode": "fill"}, (200, 200)),
        ({"width": 100, "height": 50, "mode": "exact"}, (100, 50)),
        ({"width": 1000, "height": 50, "mode": "exact"}, (1000, 50)),
        ({"scale": 0.25}, (160, 120)),
        ({"scale": 1.5, "enlarge": True}, (960, 720)),
        ({"width": 1280, "enlarge": True}, (1280, 960)),
    ],
)
def test_resize_sizes(options: dict, expected: tuple[int, int]) -> None:
    op = parse({"resize": options})
    out = op.apply(pic(images.upright(640, 480)))
    assert out.size == expected
    assert op.output_size((640, 480)) == expected


def test_resize_never_enlarges_by_default() -> None:
    picture = pic(images.upright(640, 480))
    assert parse({"resize": {"width": 1000}}).apply(picture).size == (640, 480)
    assert parse({"resize": {"width": 2000, "height": 2000}}).apply(picture).size == (640, 480)


def test_resize_fill_without_enlarge_crops_to_the_box_shape() -> None:
    op = parse({"resize": {"width": 400, "height": 400, "mode": "fill", "gravity": "north-west"}})
    out = op.apply(pic(images.upright(300, 200)))
    assert out.size == (200, 200)
    assert images.corner_is_marker(out.image)


@pytest.mark.parametrize(
    ("size", "gravity", "marker"),
    [
        ((640, 480), "west", True),
        ((640, 480), "east", False),
        ((640, 480), "north-west", True),
        ((640, 480), "center", False),
        ((480, 640), "north", True),
        ((480, 640), "south", False),
    ],
)
def test_resize_fill_gravity_picks_the_part(size, gravity: str, marker: bool) -> None:
    op = parse({"resize": {"width": 200, "height": 200, "mode": "fill", "gravity": gravity}})
    out = op.apply(pic(images.upright(*size)))
    assert out.size == (200, 200)
    assert images.corner_is_marker(out.image) is marker


def test_resize_keeps_alpha_and_converts_palette_for_quality() -> None:
    rgba = parse({"resize": {"width": 100}}).apply(pic(images.upright(200, 100, "RGBA")))
    assert rgba.mode == "RGBA" and rgba.size == (100, 50)
    # Left half opaque, right half transparent: alpha survives the resample.
    assert rgba.image.getpixel((10, 25))[3] == 255 and rgba.image.getpixel((90, 25))[3] == 0
    palette = images.upright(200, 100).convert("P", palette=Image.Palette.ADAPTIVE)
    out = parse({"resize": {"width": 100, "resample": "bicubic"}}).apply(pic(palette))
    assert out.mode == "RGB" and out.size == (100, 50)


def test_resize_keeps_every_animation_frame(tmp_path) -> None:
    path = images.animated(tmp_path / "a.gif", frames=3, size=(64, 48))
    with Image.open(path) as im:
        frames = [f.copy() for f in ImageSequence.Iterator(im)]
    picture = Picture(frames=frames, source_format="gif", durations=[100] * 3, loop=0)
    out = parse({"resize": {"width": 32}}).apply(picture)
    assert len(out.frames) == 3
    assert all(f.size == (32, 24) for f in out.frames)
    assert out.durations == [100, 100, 100]
    assert out.frames[0].tobytes() != out.frames[1].tobytes()
    assert all(f.size == (64, 48) for f in picture.frames)  # input untouched


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"width": 0},
        {"width": -5},
        {"scale": 0},
        {"scale": 0.5, "width": 100},
        {"scale": 2},
        {"mode": "fill", "width": 100},
        {"mode": "exact", "height": 100},
        {"mode": "fill", "scale": 0.5},
        {"width": 100, "gravity": "up"},
        {"width": 100, "resample": "cubic"},
        {"width": 100, "widht": 100},
    ],
)
def test_resize_rejects_bad_options(options: dict) -> None:
    with pytest.raises(ValidationError):
        parse({"resize": options})


def test_resize_unknown_mode_is_a_literal_error() -> None:
    with pytest.raises(ValidationError) as info:
        parse({"resize": {"width": 100, "mode": "fitt"}})
    errors = info.value.errors()
    assert [(e["type"], e["loc"]) for e in errors] == [("literal_error", ("mode",))]


def test_resize_takes_no_scalar() -> None:
    with pytest.raises(ValidationError, match="takes a mapping"):
        parse({"resize": 100})


@pytest.mark.parametrize(
    ("options", "output", "decode"),
    [
        ({"width": 1000}, (1000, 750), (1000, 750)),
        ({"width": 1000, "height": 1000}, (1000, 750), (1000, 750)),
        ({"width": 1000, "height": 1000, "mode": "fill"}, (1000, 1000), (1334, 1000)),
        ({"width": 1000, "height": 1000, "mode": "exact"}, (1000, 1000), (1334, 1000)),
        ({"scale": 0.1}, (400, 300), (4000, 3000)),
        ({"width": 5000}, (4000, 3000), (4000, 3000)),
        ({"width": 5000, "enlarge": True}, (5000, 3750), (4000, 3000)),
    ],
)
def test_resize_plans_output_and_decode_sizes(options: dict, output, decode) -> None:
    op = parse({"resize": options})
    assert op.output_size((4000, 3000)) == output
    assert op.decode_size((4000, 3000)) == decode
    # Decoding at the smaller size must give the same output as the full size.
    assert op.output_size(decode) == output


def test_resize_from_the_decode_size_matches_full_size_pixels() -> None:
    op = parse({"resize": {"width": 200, "height": 200, "mode": "fill", "gravity": "west"}})
    full = images.upright(800, 600)
    need = op.decode_size(full.size)
    assert need is not None and need[0] < 800
    small = full.resize(need, Image.Resampling.LANCZOS)
    a = op.apply(pic(full)).image
    b = op.apply(pic(small)).image
    assert a.size == b.size == (200, 200)
    assert images.corner_is_marker(a) and images.corner_is_marker(b)


# --- crop --------------------------------------------------------------------------------


def test_crop_box() -> None:
    op = parse({"crop": {"box": [0, 0, 100, 50]}})
    out = op.apply(pic(images.upright(640, 480)))
    assert out.size == (100, 50) and op.output_size((640, 480)) == (100, 50)
    assert images.corner_is_marker(out.image)
    away = parse({"crop": {"box": [300, 200, 400, 300]}}).apply(pic(images.upright(640, 480)))
    assert away.size == (100, 100) and not images.corner_is_marker(away.image)


def test_crop_box_outside_the_image_is_a_value_error() -> None:
    op = parse({"crop": {"box": [0, 0, 700, 100]}})
    with pytest.raises(ValueError, match=r"crop box \[0, 0, 700, 100\] is outside the 640×480"):  # noqa: RUF001
        op.apply(pic(images.upright(640, 480)))


@pytest.mark.parametrize(
    ("aspect", "gravity", "size", "marker"),
    [
        ("1:1", "west", (480, 480), True),
        ("1:1", "east", (480, 480), False),
        ("1:1", "center", (480, 480), False),
        ("16:9", "north", (640, 360), True),
        ("16:9", "south", (640, 360), False),
        (1.5, "north-west", (640, 427), True),
        ("0.5", "center", (240, 480), False),
    ],
)
def test_crop_aspect(aspect, gravity: str, size, marker: bool) -> None:
    op = parse({"crop": {"aspect": aspect, "gravity": gravity}})
    out = op.apply(pic(images.upright(640, 480)))
    assert out.size == size and op.output_size((640, 480)) == size
    assert images.corner_is_marker(out.image) is marker


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"box": [0, 0, 10, 10], "aspect": "1:1"},
        {"box": [10, 0, 5, 10]},
        {"box": [0, 0, 10]},
        {"box": [-1, 0, 10, 10]},
        {"box": [0, 0, 10, 10], "gravity": "north"},
        {"aspect": "abc"},
        {"aspect": "0:1"},
        {"aspect": "1:0"},
        {"aspect": -2},
        {"aspect": "1:1", "gravity": "middle"},
    ],
)
def test_crop_rejects_bad_options(options: dict) -> None:
    with pytest.raises(ValidationError):
        parse({"crop": options})


# --- rotate ------------------------------------------------------------------------------


def test_rotate_shorthand_and_quarter_turns_are_lossless_clockwise() -> None:
    op = parse({"rotate": 90})
    assert op.degrees == 90
    upright = images.upright(64, 48)
    out = op.apply(pic(upright))
    assert out.size == (48, 64) and op.output_size((64, 48)) == (48, 64)
    # Clockwise: the top-left marker moves to the top-right.
    assert out.image.tobytes() == upright.transpose(Image.Transpose.ROTATE_270).tobytes()
    assert not images.corner_is_marker(out.image)
    assert images.corner_is_marker(out.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


@pytest.mark.parametrize(
    ("degrees", "transpose"),
    [
        (180, Image.Transpose.ROTATE_180),
        (-90, Image.Transpose.ROTATE_90),
        (270, Image.Transpose.ROTATE_90),
        (450, Image.Transpose.ROTATE_270),
    ],
)
def test_rotate_other_quarter_turns(degrees: float, transpose) -> None:
    upright = images.upright(64, 48)
    out = parse({"rotate": degrees}).apply(pic(upright))
    assert out.image.tobytes() == upright.transpose(transpose).tobytes()


def test_rotate_zero_and_full_turn_are_no_ops() -> None:
    picture = pic(images.upright(64, 48))
    assert parse({"rotate": 0}).apply(picture) is picture
    assert parse({"rotate": 360}).apply(picture) is picture


def test_rotate_free_angle_fills_corners() -> None:
    op = parse({"rotate": 30})
    out = op.apply(pic(images.upright(200, 100)))
    assert out.mode == "RGB" and out.size[0] > 200 and out.size[1] > 100
    assert op.output_size((200, 100)) is None
    assert out.image.getpixel((0, 0)) == (255, 255, 255)
    black = parse({"rotate": {"degrees": 30, "fill": "black"}}).apply(pic(images.upright(200, 100)))
    assert black.image.getpixel((0, 0)) == (0, 0, 0)
    clear = parse({"rotate": {"degrees": 30, "fill": "transparent"}})
    out = clear.apply(pic(images.upright(200, 100)))
    assert out.mode == "RGBA" and out.image.getpixel((0, 0))[3] == 0


def test_rotate_free_angle_keeps_alpha_transparent_and_size_without_expand() -> None:
    out = parse({"rotate": 45}).apply(pic(images.upright(200, 100, "RGBA")))
    assert out.mode == "RGBA" and out.image.getpixel((0, 0))[3] == 0
    fixed = parse({"rotate": {"degrees": 10, "expand": False}})
    assert fixed.apply(pic(images.upright(200, 100))).size == (200, 100)
    assert fixed.output_size((200, 100)) == (200, 100)
    gray = parse({"rotate": 20}).apply(pic(images.upright(100, 100, "L")))
    assert gray.mode == "L" and gray.image.getpixel((0, 0)) == 255


@pytest.mark.parametrize(
    "item",
    [{"rotate": None}, {"rotate": "ninety"}, {"rotate": {"degrees": 10, "fill": "nocolour"}}],
)
def test_rotate_rejects_bad_options(item) -> None:
    with pytest.raises(ValidationError):
        parse(item)


# --- flip --------------------------------------------------------------------------------


def test_flip_moves_the_marker() -> None:
    upright = images.upright(64, 48)
    horizontal = parse("flip").apply(pic(upright))
    assert not images.corner_is_marker(horizontal.image)
    assert images.corner_is_marker(horizontal.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    vertical = parse({"flip": "vertical"}).apply(pic(upright))
    assert images.corner_is_marker(vertical.image.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    assert parse({"flip": {"direction": "vertical"}}).output_size((64, 48)) == (64, 48)
    assert images.corner_is_marker(upright)  # input untouched


def test_flip_rejects_unknown_direction() -> None:
    with pytest.raises(ValidationError):
        parse({"flip": "diagonal"})
