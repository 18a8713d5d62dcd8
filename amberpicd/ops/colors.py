"""Colours as the config writes them, parsed without Pillow (config never imports it).

The syntax is exactly Pillow's ``ImageColor.getrgb`` (tests/test_colors.py compares the two
on every form), so a colour the config accepts is the one the pixels get: a CSS colour name
(any case), ``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``, ``rgb(r, g, b)``,
``rgb(r%, g%, b%)``, ``rgba(r, g, b, a)``, ``hsl(h, s%, l%)``, ``hsv(h, s%, v%)`` (also
``hsb``); ``transparent`` is ours. Pure data and string parsing: imports nothing of ours.
"""

from __future__ import annotations

import re
from colorsys import hls_to_rgb, hsv_to_rgb

# The CSS Color Module Level 4 names, as Pillow's ImageColor.colormap has them (hex RGB).
NAMES: dict[str, str] = {
    "aliceblue": "f0f8ff",
    "antiquewhite": "faebd7",
    "aqua": "00ffff",
    "aquamarine": "7fffd4",
    "azure": "f0ffff",
    "beige": "f5f5dc",
    "bisque": "ffe4c4",
    "black": "000000",
    "blanchedalmond": "ffebcd",
    "blue": "0000ff",
    "blueviolet": "8a2be2",
    "brown": "a52a2a",
    "burlywood": "deb887",
    "cadetblue": "5f9ea0",
    "chartreuse": "7fff00",
    "chocolate": "d2691e",
    "coral": "ff7f50",
    "cornflowerblue": "6495ed",
    "cornsilk": "fff8dc",
    "crimson": "dc143c",
    "cyan": "00ffff",
    "darkblue": "00008b",
    "darkcyan": "008b8b",
    "darkgoldenrod": "b8860b",
    "darkgray": "a9a9a9",
    "darkgreen": "006400",
    "darkgrey": "a9a9a9",
    "darkkhaki": "bdb76b",
    "darkmagenta": "8b008b",
    "darkolivegreen": "556b2f",
    "darkorange": "ff8c00",
    "darkorchid": "9932cc",
    "darkred": "8b0000",
    "darksalmon": "e9967a",
    "darkseagreen": "8fbc8f",
    "darkslateblue": "483d8b",
    "darkslategray": "2f4f4f",
    "darkslategrey": "2f4f4f",
    "darkturquoise": "00ced1",
    "darkviolet": "9400d3",
    "deeppink": "ff1493",
    "deepskyblue": "00bfff",
    "dimgray": "696969",
    "dimgrey": "696969",
    "dodgerblue": "1e90ff",
    "firebrick": "b22222",
    "floralwhite": "fffaf0",
    "forestgreen": "228b22",
    "fuchsia": "ff00ff",
    "gainsboro": "dcdcdc",
    "ghostwhite": "f8f8ff",
    "gold": "ffd700",
    "goldenrod": "daa520",
    "gray": "808080",
    "green": "008000",
    "greenyellow": "adff2f",
    "grey": "808080",
    "honeydew": "f0fff0",
    "hotpink": "ff69b4",
    "indianred": "cd5c5c",
    "indigo": "4b0082",
    "ivory": "fffff0",
    "khaki": "f0e68c",
    "lavender": "e6e6fa",
    "lavenderblush": "fff0f5",
    "lawngreen": "7cfc00",
    "lemonchiffon": "fffacd",
    "lightblue": "add8e6",
    "lightcoral": "f08080",
    "lightcyan": "e0ffff",
    "lightgoldenrodyellow": "fafad2",
    "lightgray": "d3d3d3",
    "lightgreen": "90ee90",
    "lightgrey": "d3d3d3",
    "lightpink": "ffb6c1",
    "lightsalmon": "ffa07a",
    "lightseagreen": "20b2aa",
    "lightskyblue": "87cefa",
    "lightslategray": "778899",
    "lightslategrey": "778899",
    "lightsteelblue": "b0c4de",
    "lightyellow": "ffffe0",
    "lime": "00ff00",
    "limegreen": "32cd32",
    "linen": "faf0e6",
    "magenta": "ff00ff",
    "maroon": "800000",
    "mediumaquamarine": "66cdaa",
    "mediumblue": "0000cd",
    "mediumorchid": "ba55d3",
    "mediumpurple": "9370db",
    "mediumseagreen": "3cb371",
    "mediumslateblue": "7b68ee",
    "mediumspringgreen": "00fa9a",
    "mediumturquoise": "48d1cc",
    "mediumvioletred": "c71585",
    "midnightblue": "191970",
    "mintcream": "f5fffa",
    "mistyrose": "ffe4e1",
    "moccasin": "ffe4b5",
    "navajowhite": "ffdead",
    "navy": "000080",
    "oldlace": "fdf5e6",
    "olive": "808000",
    "olivedrab": "6b8e23",
    "orange": "ffa500",
    "orangered": "ff4500",
    "orchid": "da70d6",
    "palegoldenrod": "eee8aa",
    "palegreen": "98fb98",
    "paleturquoise": "afeeee",
    "palevioletred": "db7093",
    "papayawhip": "ffefd5",
    "peachpuff": "ffdab9",
    "peru": "cd853f",
    "pink": "ffc0cb",
    "plum": "dda0dd",
    "powderblue": "b0e0e6",
    "purple": "800080",
    "rebeccapurple": "663399",
    "red": "ff0000",
    "rosybrown": "bc8f8f",
    "royalblue": "4169e1",
    "saddlebrown": "8b4513",
    "salmon": "fa8072",
    "sandybrown": "f4a460",
    "seagreen": "2e8b57",
    "seashell": "fff5ee",
    "sienna": "a0522d",
    "silver": "c0c0c0",
    "skyblue": "87ceeb",
    "slateblue": "6a5acd",
    "slategray": "708090",
    "slategrey": "708090",
    "snow": "fffafa",
    "springgreen": "00ff7f",
    "steelblue": "4682b4",
    "tan": "d2b48c",
    "teal": "008080",
    "thistle": "d8bfd8",
    "tomato": "ff6347",
    "turquoise": "40e0d0",
    "violet": "ee82ee",
    "wheat": "f5deb3",
    "white": "ffffff",
    "whitesmoke": "f5f5f5",
    "yellow": "ffff00",
    "yellowgreen": "9acd32",
}

_MAX_LENGTH = 100  # Pillow refuses longer specifiers
# Pillow matches each with re.match(...$): "$" also matches before one final newline.
_HEX = re.compile(r"#([a-f0-9]{3,4}|[a-f0-9]{6}|[a-f0-9]{8})$")
_RGB = re.compile(r"rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")
_RGB_PERCENT = re.compile(r"rgb\(\s*(\d+)%\s*,\s*(\d+)%\s*,\s*(\d+)%\s*\)$")
_NUMBER = r"(\d+\.?\d*)"
_HSL = re.compile(rf"hsl\(\s*{_NUMBER}\s*,\s*{_NUMBER}%\s*,\s*{_NUMBER}%\s*\)$")
_HSV = re.compile(rf"hs[bv]\(\s*{_NUMBER}\s*,\s*{_NUMBER}%\s*,\s*{_NUMBER}%\s*\)$")
_RGBA = re.compile(r"rgba\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")


def _byte(fraction: float) -> int:
    return int(fraction * 255 + 0.5)


def getrgb(color: str) -> tuple[int, ...]:
    """``(r, g, b)`` or ``(r, g, b, a)`` as Pillow's ``ImageColor.getrgb`` gives them for
    ``color``; ValueError for what it refuses."""
    if len(color) > _MAX_LENGTH:
        raise ValueError("color specifier is too long")
    color = color.lower()
    named = NAMES.get(color)
    if named is not None:
        return tuple(bytes.fromhex(named))
    if m := _HEX.match(color):
        digits = m.group(1)
        if len(digits) in (3, 4):
            digits = "".join(d * 2 for d in digits)
        return tuple(bytes.fromhex(digits))
    if m := _RGB.match(color):
        return tuple(int(g) for g in m.groups())
    if m := _RGB_PERCENT.match(color):
        return tuple(int(int(g) * 255 / 100.0 + 0.5) for g in m.groups())
    if m := _HSL.match(color):
        h, s, lightness = (float(g) for g in m.groups())
        return tuple(_byte(c) for c in hls_to_rgb(h / 360.0, lightness / 100.0, s / 100.0))
    if m := _HSV.match(color):
        h, s, v = (float(g) for g in m.groups())
        return tuple(_byte(c) for c in hsv_to_rgb(h / 360.0, s / 100.0, v / 100.0))
    if m := _RGBA.match(color):
        return tuple(int(g) for g in m.groups())
    raise ValueError(f"unknown color specifier: {color!r}")


def rgba(color: str) -> tuple[int, int, int, int]:
    """``color`` (as ``getrgb`` reads it, or ``transparent``) as RGBA; opaque unless given."""
    if color.strip().lower() == "transparent":
        return (0, 0, 0, 0)
    value = getrgb(color)
    return (value[0], value[1], value[2], value[3] if len(value) == 4 else 255)
