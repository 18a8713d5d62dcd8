"""The tray icons' pixels, at the sizes panels use."""

from __future__ import annotations

import pytest

from amberpicd.desktop.tray.icons import EDGE, FILL, STATES, render

SIZES = (16, 22, 24, 32, 48, 64)


def near(pixel, colour, tolerance: int = 24) -> bool:
    return (
        all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))
        and pixel[3] == 255
    )


def at(im, fx: float, fy: float):
    """The pixel at a fraction of the icon's width and height."""
    return im.getpixel(
        (min(int(fx * im.width), im.width - 1), min(int(fy * im.height), im.height - 1))
    )


WHITE = (255, 255, 255)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES)
def test_size_mode_and_transparent_corners(state, size):
    im = render(state, size)
    assert im.size == (size, size) and im.mode == "RGBA"
    for corner in ((0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)):
        assert im.getpixel(corner)[3] == 0, corner
    # The antialiased rim keeps the rim's colour instead of fading to the transparent
    # pixels' black (a dark fringe on light panels).
    data = im.tobytes()
    rim = [tuple(data[i : i + 4]) for i in range(0, len(data), 4) if 0 < data[i + 3] < 255]
    assert rim
    for pixel in rim:
        assert max(pixel[:3]) >= max(EDGE[state]) - 20, pixel


@pytest.mark.parametrize("size", SIZES)
def test_each_state_is_told_by_colour_and_shape(size):
    idle, working = render("idle", size), render("working", size)
    paused, error = render("paused", size), render("error", size)
    offline = render("offline", size)
    # Fill colour just inside the top edge.
    for state, im in (("idle", idle), ("working", working), ("paused", paused), ("error", error)):
        assert near(at(im, 0.5, 0.15), FILL[state]), (state, at(im, 0.5, 0.15))
    # idle: a white lens in the middle; working: a white arc at the right, hollow middle.
    assert near(at(idle, 0.5, 0.5), WHITE)
    assert near(at(working, 0.72, 0.5), WHITE, 60) and near(at(working, 0.5, 0.5), FILL["working"])
    # paused: two white bars with grey between them.
    assert near(at(paused, 0.375, 0.5), WHITE) and near(at(paused, 0.625, 0.5), WHITE)
    assert near(at(paused, 0.5, 0.5), FILL["paused"])
    # error: "!" — a white stem and dot with red between them.
    assert near(at(error, 0.5, 0.4), WHITE) and near(at(error, 0.5, 0.75), WHITE)
    assert near(at(error, 0.5, 0.64), FILL["error"], 60)
    # offline: a ring with a transparent middle.
    assert at(offline, 0.5, 0.5)[3] == 0 and at(offline, 0.5, 0.02)[3] > 0


@pytest.mark.parametrize("size", (16, 32))
def test_straight_edges_are_crisp(size):
    # The pause bars are snapped to whole pixels: each row across a bar is fully white or
    # not white at all, no half-tones on the vertical edges.
    paused = render("paused", size)
    row = [paused.getpixel((x, size // 2)) for x in range(size)]
    whites = [x for x, p in enumerate(row) if p[:3] == WHITE]
    assert whites, row
    partial = [x for x, p in enumerate(row) if 0 < (sum(p[:3]) - 3 * FILL["paused"][0]) < 3 * 130]
    assert not partial, (partial, row)


def test_states_differ_from_each_other():
    images = {s: render(s, 24).tobytes() for s in STATES}
    assert len(set(images.values())) == len(STATES)


@pytest.mark.parametrize(("state", "size"), [("busy", 16), ("idle", 4)])
def test_bad_arguments(state, size):
    with pytest.raises(ValueError):
        render(state, size)
