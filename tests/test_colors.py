"""Colours in the config: parsed without Pillow (the config never imports it), accepting
exactly what Pillow's ImageColor.getrgb accepts, with the same values."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageColor

from amberpicd.ops.colors import NAMES, getrgb, rgba

CONFIG = """
watch:
  - inbox: {root}/inbox
rules:
  - name: web
    pipeline:
      - rotate: {{degrees: 10, fill: "#336699cc"}}
      - background: {{color: "rgb(10%, 20%, 30%)"}}
      - watermark: {{text: "(c) me", color: darkslateblue}}
      - encode: webp
    output: {root}/out/{{stem}}.{{ext}}
"""

# Loads a config in a fresh process and says which Pillow modules that imported.
_PROBE = """
import json, sys
from pathlib import Path
from amberpicd.config.loader import load_config
loaded = load_config(Path(sys.argv[1]))
colours = [s.model_dump() for s in loaded.config.rules[0].pipeline]
if sys.argv[2] == "control":
    from amberpicd.ops._common import Color  # noqa: F401
    import PIL.ImageColor  # noqa: F401
print(json.dumps({"pil": sorted(m for m in sys.modules if m.split(".")[0] == "PIL")}))
"""


def probe(cfg: Path, mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(cfg), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["pil"]


def test_a_config_with_colours_loads_without_pillow(tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(root=tmp_path))
    assert probe(cfg, "control"), "control: the probe sees Pillow when it is imported"
    assert probe(cfg, "plain") == []


def test_a_bad_colour_is_still_refused_at_load(tmp_path: Path):
    from amberpicd.config.loader import parse_config
    from amberpicd.errors import ConfigError

    text = CONFIG.format(root=tmp_path).replace("darkslateblue", "darkslateblu")
    with pytest.raises(ConfigError, match="unknown colour 'darkslateblu'"):
        parse_config(text, None, tmp_path)


def pillow(color: str) -> tuple[int, ...] | None:
    try:
        return ImageColor.getrgb(color)
    except ValueError:
        return None


def ours(color: str) -> tuple[int, ...] | None:
    try:
        return getrgb(color)
    except ValueError:
        return None


def test_every_name_as_pillow_has_it():
    assert set(NAMES) == set(ImageColor.colormap)
    for name in ImageColor.colormap:
        for spelling in (name, name.upper(), name.title()):
            assert ours(spelling) == pillow(spelling), spelling


FORMS = [
    "#abc", "#ABC", "#abcd", "#a1b2c3", "#A1B2C3D4", "#abcde", "#abcdefa", "#ggg", "abc",
    "#abc\n", "#a1b2c3\n", "#a1b2c3d4\n", "#abc ", " #abc", "#abc\n\n",
    "rgb(1,2,3)", "rgb( 1 , 2 , 3 )", "RGB(255,0,0)", "rgb(300,0,0)", "rgb(1,2)", "rgb(1,2,3,4)",
    "rgb(10%,20%,30%)", "rgb(10%, 20%, 101%)", "rgb(10%,20,30%)", "rgb(1.5,2,3)",
    "rgba(1,2,3,4)", "rgba( 1,2,3, 255 )", "rgba(1,2,3)", "rgb(\u0663,1,2)",
    "hsl(120,50%,50%)", "hsl(120.5, 50.25%, 40%)", "hsl(360,100%,100%)", "hsl(120,50,50)",
    "hsv(200,30%,40%)", "hsb(200,30%,40%)", "hsb(200.,30.%,40%)", "hsl(-1,2%,3%)",
    "transparent", "", " ", "red\n", "red ", "#" + "a" * 120, "rgb(" + "1" * 99 + ",0,0)",
]  # fmt: skip


@pytest.mark.parametrize("color", FORMS)
def test_each_form_as_pillow_reads_it(color: str):
    assert ours(color) == pillow(color)


def test_random_hex_and_functional_forms_as_pillow():
    rnd = random.Random(13)
    for _ in range(2000):
        n = rnd.choice((3, 4, 6, 8))
        hexa = "#" + "".join(rnd.choice("0123456789abcdefABCDEF") for _ in range(n))
        r, g, b = (rnd.randint(0, 400) for _ in range(3))
        h, s, v = rnd.uniform(0, 360), rnd.uniform(0, 100), rnd.uniform(0, 100)
        for color in (
            hexa,
            f"rgb({r},{g},{b})",
            f"rgb({r % 101}%,{g % 101}%,{b % 101}%)",
            f"rgba({r},{g},{b},{rnd.randint(0, 255)})",
            f"hsl({h:.3f},{s:.2f}%,{v:.1f}%)",
            f"hsv({h:.0f},{s:.0f}%,{v:.4f}%)",
        ):
            assert ours(color) == pillow(color), color


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="#abcdefgrbhslv0123456789(),.% \n\t", max_size=30))
def test_any_string_is_read_as_pillow_reads_it(color: str):
    assert ours(color) == pillow(color)


def test_rgba_is_opaque_unless_given():
    assert rgba("white") == (255, 255, 255, 255)
    assert rgba("#11223344") == (0x11, 0x22, 0x33, 0x44)
    assert rgba(" Transparent ") == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "value, shown",
    [
        ('"dark\\nblue"', "dark\\x0ablue"),  # a real newline, escaped as printable() does
        ('"back\\\\slash"', "back\\slash"),  # one backslash, shown as one
        ('"' + "x" * 5000 + '"', "x" * 40),
    ],
)
def test_a_bad_colour_is_said_on_one_short_line_without_a_repr(tmp_path: Path, value, shown):
    from amberpicd.config.loader import parse_config
    from amberpicd.errors import ConfigError

    text = CONFIG.format(root=tmp_path).replace("darkslateblue", value)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, None, tmp_path)
    message = str(caught.value.errors[0] if hasattr(caught.value, "errors") else caught.value)
    assert "\n" not in message
    assert "watermark.color" in message  # names the key
    assert f"unknown colour '{shown}" in message, message
    assert len(message) < 300, message
