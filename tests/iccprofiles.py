"""Wide-gamut ICC profiles for tests, built byte by byte (Pillow's ImageCms can only
create sRGB and Lab): matrix/TRC display profiles (ICC v2) for Adobe RGB (1998) and
Display P3, with their D50-adapted colorants as published in Adobe's and Apple's own
profiles. LittleCMS reads them like any other.
"""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)
ADOBE_RGB = {
    "rXYZ": (0.60974, 0.31111, 0.01947),
    "gXYZ": (0.20528, 0.62567, 0.06087),
    "bXYZ": (0.14919, 0.06322, 0.74457),
}
DISPLAY_P3 = {
    "rXYZ": (0.51512, 0.24120, -0.00105),
    "gXYZ": (0.29198, 0.69225, 0.04189),
    "bXYZ": (0.15710, 0.06657, 0.78407),
}


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _gamma(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _srgb_curve(points: int = 1024) -> bytes:
    def decode(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    table = [round(decode(i / (points - 1)) * 65535) for i in range(points)]
    return b"curv\0\0\0\0" + struct.pack(f">I{points}H", points, *table)


def _desc(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    body = b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
    body += struct.pack(">II", 0, 0)  # no Unicode description
    body += struct.pack(">HB", 0, 0) + b"\0" * 67  # no ScriptCode description
    return body


def _text(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode() + b"\0"


def profile(
    name: str,
    colorants: dict[str, tuple[float, float, float]],
    trc: bytes,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A matrix/TRC profile; ``extra`` (signature, element) tags are appended as given."""
    tags = [
        (b"desc", _desc(name)),
        (b"cprt", _text("No copyright, test profile")),
        (b"wtpt", _xyz(D50)),
        *((sig.encode(), _xyz(xyz)) for sig, xyz in colorants.items()),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
        *extra,
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        while len(body) % 4:
            body += b"\0"
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000)
    header += b"mntrRGB XYZ " + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp"
    header += b"\0" * 24  # platform, flags, manufacturer, model, attributes
    header += struct.pack(">I", 0) + b"".join(_s15(v) for v in D50)  # intent, illuminant
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def adobe_rgb() -> bytes:
    return profile("Adobe RGB (1998) test", ADOBE_RGB, _gamma(563 / 256))


def display_p3() -> bytes:
    return profile("Display P3 test", DISPLAY_P3, _srgb_curve())
