"""The tray icon, drawn with Pillow at run time for any size (16 to 64 px and beyond).

One disc per state, told apart by colour and by shape (for colour-blind users and grey
panels alike): idle an amber disc with a lens, working an amber disc with a progress arc,
paused a grey disc with two bars, error a red disc with "!", offline a hollow grey ring.

Shapes are laid out in target pixels and snapped to whole pixels where they have straight
edges, then drawn 4x larger and reduced: straight edges stay sharp at 16 px, round ones are
smoothly antialiased (Pillow weighs the colours by alpha, so the rim keeps its colour).
"""

from __future__ import annotations

from PIL import Image, ImageDraw

STATES = ("idle", "working", "paused", "error", "offline")
SUPERSAMPLE = 4

AMBER = (240, 160, 32)
AMBER_EDGE = (168, 100, 0)
GREY = (118, 118, 118)
GREY_EDGE = (72, 72, 72)
RED = (214, 48, 48)
RED_EDGE = (140, 20, 20)
WHITE = (255, 255, 255, 255)

# Each state's fill and rim colours, also for tests and anyone sampling the icon.
FILL = {"idle": AMBER, "working": AMBER, "paused": GREY, "error": RED, "offline": GREY}
EDGE = {"idle": AMBER_EDGE, "working": AMBER_EDGE, "paused": GREY_EDGE, "error": RED_EDGE}
EDGE["offline"] = GREY


def render(state: str, size: int) -> Image.Image:
    """An RGBA ``size`` x ``size`` icon for ``state`` (one of ``STATES``)."""
    if state not in STATES:
        raise ValueError(f"unknown tray state {state!r}; expected one of {', '.join(STATES)}")
    if size < 8:
        raise ValueError(f"tray icons need at least 8 px, not {size}")
    k = SUPERSAMPLE
    big = Image.new("RGBA", (size * k, size * k), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    edge = max(1, round(size / 16))  # outline width in target pixels: 1 px up to 24 px
    disc = (0, 0, size * k - 1, size * k - 1)
    if state == "offline":
        draw.ellipse(disc, outline=(*EDGE[state], 255), width=edge * k * 2)
    else:
        draw.ellipse(disc, fill=(*FILL[state], 255), outline=(*EDGE[state], 255), width=edge * k)
        _GLYPHS[state](draw, size, k)
    return big.reduce(k)  # Pillow weighs RGBA by alpha here: no dark fringe on the rim


def _box(size: int, k: int, x0: float, y0: float, x1: float, y1: float) -> list[int]:
    """A rectangle given in target pixels (fractions of ``size``), snapped to whole pixels."""
    left, top, right, bottom = (round(v * size) * k for v in (x0, y0, x1, y1))
    return [left, top, right - 1, bottom - 1]  # Pillow's rectangle includes its end corner


def _lens(draw: ImageDraw.ImageDraw, size: int, k: int) -> None:
    r = size * k * 0.2
    c = size * k / 2
    draw.ellipse((c - r, c - r, c + r, c + r), fill=WHITE)


def _arc(draw: ImageDraw.ImageDraw, size: int, k: int) -> None:
    inset = size * k * 0.22
    width = max(2 * k, round(size * 0.14) * k)
    box = (inset, inset, size * k - inset, size * k - inset)
    draw.arc(box, start=-90, end=180, fill=WHITE, width=width)


def _bars(draw: ImageDraw.ImageDraw, size: int, k: int) -> None:
    for x0, x1 in ((0.31, 0.44), (0.56, 0.69)):
        draw.rectangle(_box(size, k, x0, 0.28, x1, 0.72), fill=WHITE)


def _bang(draw: ImageDraw.ImageDraw, size: int, k: int) -> None:
    draw.rectangle(_box(size, k, 0.44, 0.19, 0.56, 0.59), fill=WHITE)
    draw.rectangle(_box(size, k, 0.44, 0.69, 0.56, 0.81), fill=WHITE)


_GLYPHS = {"idle": _lens, "working": _arc, "paused": _bars, "error": _bang}
