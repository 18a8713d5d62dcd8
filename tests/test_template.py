from datetime import datetime
from pathlib import Path

import pytest

from amberpicd.errors import OutputError
from amberpicd.output.template import TemplateValues, clean_component, fixed_root, render

SRC = Path("/in/x.jpg")


def values(**kw):
    base = dict(
        stem="IMG_0042",
        name="IMG_0042.heic",
        ext="webp",
        rule="web",
        width=2048,
        height=1536,
        date=datetime(2024, 5, 6, 7, 8, 9),
        hash="deadbeef",
        relpath="",
    )
    base.update(kw)
    return TemplateValues(**base)


def test_every_field_renders():
    t = "/out/{rule}/{date:%Y/%m}/{relpath}/{stem}-{width}x{height}-{hash}.{ext}"
    got = render(t, values(relpath="trip/day1"), SRC)
    assert got == Path("/out/web/2024/05/trip/day1/IMG_0042-2048x1536-deadbeef.webp")
    assert render("/out/{name}", values(), SRC) == Path("/out/IMG_0042.heic")


def test_default_date_format_and_empty_relpath():
    assert render("/o/{relpath}/{date}/{stem}.{ext}", values(), SRC) == Path(
        "/o/2024-05-06/IMG_0042.webp"
    )


@pytest.mark.parametrize(
    "stem",
    ["../../etc/passwd", "..", "a/b", "/abs", "nul\x00byte", "ctl\x1b[31m", "x" * 600, "...", ""],
)
def test_hostile_names_stay_inside_the_root(stem):
    got = render("/out/web/{stem}.{ext}", values(stem=stem), SRC)
    assert got.parent == Path("/out/web")
    assert "\x00" not in str(got) and "\x1b" not in str(got)
    assert len(got.name.encode()) <= 255
    assert ".." not in got.parts


def test_hostile_relpath_is_confined():
    got = render("/out/{relpath}/{stem}.{ext}", values(relpath="../../../etc"), SRC)
    assert got.is_relative_to("/out") and ".." not in got.parts


def test_hostile_date_spec_cannot_escape():
    # A spec producing ".." components (from a literal in the spec) is cleaned.
    got = render("/out/{date:..}/{stem}.{ext}", values(), SRC)
    assert got.is_relative_to("/out") and ".." not in got.parts


def test_literal_parent_reference_in_template_is_refused():
    with pytest.raises(OutputError, match="escapes"):
        render("/out/{stem}/../../x.{ext}", values(), SRC)


def test_non_utf8_names_are_made_safe():
    stem = b"caf\xe9".decode("utf-8", "surrogateescape")
    got = render("/out/{stem}.{ext}", values(stem=stem), SRC)
    got.name.encode("utf-8")  # encodable: no lone surrogates left


def test_clean_component_cuts_on_character_boundary():
    cut = clean_component("é" * 200)
    assert len(cut.encode()) <= 255
    cut.encode("utf-8")


def test_fixed_root():
    assert fixed_root("/a/b/{stem}.{ext}") == Path("/a/b")
    assert fixed_root("/a/b/pre-{stem}.{ext}") == Path("/a/b")


def test_dot_components_of_the_fixed_root_are_normalised():
    # "./out/{stem}" or "~/./x" is the same folder as "out" or "~/x": outputs render inside it.
    assert fixed_root("/a/./b/{stem}.{ext}") == Path("/a/b")
    assert render("/a/./b/{stem}.{ext}", values(), SRC) == Path("/a/b/IMG_0042.webp")
    assert render("/a//b/./{date:%Y}/{stem}.{ext}", values(), SRC) == Path(
        "/a/b/2024/IMG_0042.webp"
    )
    assert render("out/{stem}.{ext}", values(), SRC) == Path("out/IMG_0042.webp")
