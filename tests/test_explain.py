"""`amberpicd explain`: every condition's verdict in words, checked by hand, and the outputs
it shows are the ones a real `process` run writes; it writes nothing itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

import images
import pytest
from PIL import Image
from rulefacts import facts

from amberpicd.cli.main import main
from amberpicd.config.schema import Match, Rule
from amberpicd.rules.conditions import CONDITION_FIELDS, verdicts
from amberpicd.rules.match import evaluate, matching_rules


@pytest.mark.parametrize(
    ("condition", "fact", "text"),
    [
        ({"formats": ["jpeg", "png"]}, {}, "formats [jpeg, png]: yes, jpeg"),
        ({"formats": ["png"]}, {}, "formats [png]: no, jpeg"),
        ({"names": ["*.jpg"]}, {}, "names [*.jpg]: yes, IMG_1.JPG"),
        ({"names": ["*.png", "x*"]}, {}, "names [*.png, x*]: no, IMG_1.JPG"),
        ({"min_width": 800}, {"width": 640}, "min_width 800: no, width is 640"),
        ({"min_width": 800}, {}, "min_width 800: yes, width is 4000"),
        ({"max_width": 800}, {}, "max_width 800: no, width is 4000"),
        ({"min_height": 3000}, {}, "min_height 3000: yes, height is 3000"),
        ({"max_height": 2999}, {}, "max_height 2999: no, height is 3000"),
        ({"min_pixels": 12_000_001}, {}, "min_pixels 12000001: no, pixels is 12000000"),
        ({"max_pixels": 12_000_000}, {}, "max_pixels 12000000: yes, pixels is 12000000"),
        ({"min_bytes": "3MB"}, {}, "min_bytes 3.0 MB: no, size is 2.0 MB"),
        ({"max_bytes": "2MB"}, {}, "max_bytes 2.0 MB: yes, size is 2.0 MB"),
        ({"max_bytes": 512}, {"size_bytes": 900}, "max_bytes 512 bytes: no, size is 900 bytes"),
        ({"orientation": "portrait"}, {}, "orientation portrait: no, landscape (upright)"),
        ({"orientation": "square"}, {"width": 5, "height": 5}, "orientation square: yes, square"),
    ],
)
def test_each_condition_says_whether_it_holds_and_why(condition, fact, text):
    match = Match.model_validate(condition)
    (verdict,) = verdicts(match, facts(**fact))
    assert verdict.text.startswith(text)
    assert verdict.holds == (": yes," in text)


def test_every_match_field_is_a_condition_once():
    """A condition added to Match but not to the table would be matched by nobody."""
    assert sorted(CONDITION_FIELDS) == sorted(Match.model_fields)


def test_unset_conditions_are_not_listed():
    assert verdicts(Match(), facts()) == []
    assert verdicts(Match(orientation="any"), facts()) == []


def rule(name: str, **kw: object) -> Rule:
    return Rule.model_validate(
        {"name": name, "output": f"/o/{name}", "pipeline": ["auto_orient"], **kw}
    )


def test_evaluate_is_what_matching_uses_and_names_the_stopper():
    rules = [
        rule("small", match={"max_width": 100}),
        rule("web", stop=True),
        rule("late"),
    ]
    decided = evaluate(rules, facts())
    assert [(d.rule.name, d.applies, d.stopped_by) for d in decided] == [
        ("small", False, None),
        ("web", True, None),
        ("late", False, "web"),
    ]
    assert [r.name for r in matching_rules(rules, facts())] == ["web"]
    assert decided[0].verdicts[0].text == "max_width 100: no, width is 4000"


CONFIG = """\
version: 1
watch:
  - inbox: {root}/in
    originals: {originals}
    archive: {root}/archive
rules:
  - name: web
    match: {{formats: [jpeg, png], min_width: 800}}
    output: {root}/out/{{stem}}.{{ext}}
    stop: true
    pipeline:
      - resize: {{width: 400, height: 400}}
      - encode: {{format: webp, quality: 80}}
  - name: small
    match: {{max_width: 799}}
    output: {root}/out/small/{{stem}}-{{width}}.{{ext}}
    pipeline:
      - resize: {{width: 100}}
  - name: late
    output: {root}/out/late/{{stem}}.{{ext}}
    pipeline: [auto_orient]
"""


def setup(tmp_path: Path, originals: str = "move") -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "archive").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(root=tmp_path, originals=originals))
    return config


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry below root with its size and mtime: what "writes nothing" compares."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(Path(folder, name))
            found[str(Path(folder, name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def explain(config: Path, *paths: Path, capsys, json_out: bool = False) -> tuple[int, str]:
    args = ["-c", str(config), "explain", *(["--json"] if json_out else []), *map(str, paths)]
    code = main(args)
    return code, capsys.readouterr().out


def test_explain_shows_facts_rules_reasons_outputs_and_original(tmp_path, capsys):
    config = setup(tmp_path)
    photo = images.jpeg(tmp_path / "in" / "IMG_1.jpg", size=(1200, 900), orientation=6)
    before = tree(tmp_path)
    code, out = explain(config, photo, capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == str(photo)
    assert "1200x900 upright (orientation 6: rotated 90° clockwise)" in lines[1]
    assert "  date: 2024-05-06 07:08:09 (from EXIF DateTimeOriginal)" in lines
    assert "  rule web: applies" in lines
    assert "    formats [jpeg, png]: yes, jpeg" in lines
    assert "    min_width 800: yes, width is 1200" in lines
    assert any(
        line.startswith(f"    would write {tmp_path}/out/IMG_1.webp (400x300, ") for line in lines
    )
    assert '  rule small: not tried: stopped by rule "web" (stop)' in lines
    assert f"  original: would be moved to {tmp_path}/archive/IMG_1.jpg" in lines
    assert tree(tmp_path) == before  # nothing written, moved or touched


def test_a_rule_that_does_not_apply_says_which_condition_failed(tmp_path, capsys):
    config = setup(tmp_path, originals="delete")
    small = images.png(tmp_path / "in" / "s.png", size=(640, 480))
    code, out = explain(config, small, capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert "  rule web: does not apply" in lines
    assert "    min_width 800: no, width is 640" in lines
    assert "  rule small: applies" in lines
    assert "    max_width 799: yes, width is 640" in lines
    assert "  rule late: applies" in lines and "    no conditions: every image" in lines
    assert "  original: would be deleted" in lines
    assert (tmp_path / "in" / "s.png").exists()


def test_a_file_that_is_not_an_image_is_named_with_the_reason(tmp_path, capsys):
    config = setup(tmp_path)
    notes = tmp_path / "in" / "notes.jpg"
    notes.write_text("not a photo")
    code, out = explain(config, notes, capsys=capsys)
    assert code == 0
    assert out.splitlines() == [
        str(notes),
        "  not processed: notes.jpg: not an image (unrecognised content)",
    ]


@pytest.mark.parametrize(
    ("originals", "said"),
    [("keep", "kept where it is"), ("trash", "moved to the trash"), ("delete", "deleted")],
)
def test_the_original_policy_in_words(tmp_path, capsys, originals, said):
    config = setup(tmp_path, originals=originals)
    photo = images.jpeg(tmp_path / "in" / "p.jpg", size=(900, 600))
    _, out = explain(config, photo, capsys=capsys, json_out=True)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["original"] == said


def test_outputs_shown_are_the_ones_process_writes(tmp_path, capsys):
    """The acceptance check: explain's paths and sizes are what a real run then writes."""
    config = setup(tmp_path, originals="keep")
    files = [
        images.jpeg(tmp_path / "in" / "big.jpg", size=(1600, 1200)),
        images.png(tmp_path / "in" / "tiny.png", size=(300, 200)),
        images.jpeg(tmp_path / "in" / "tall.jpg", size=(900, 1600), orientation=8),
    ]
    _, out = explain(config, *files, capsys=capsys, json_out=True)
    shown = {}
    for line in out.splitlines():
        row = json.loads(line)
        for o in row["outputs"]:
            shown[o["path"]] = (o["bytes"], o["width"], o["height"])
    assert len(shown) == 4  # big → web; tiny → small + late; tall → web
    assert main(["-c", str(config), "process", "-j", "1", *map(str, files)]) == 0
    capsys.readouterr()
    written = {str(p) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert written == set(shown)
    for path, (size, width, height) in shown.items():
        assert Path(path).stat().st_size == size
        with Image.open(path) as im:
            assert im.size == (width, height)


def test_json_names_every_rule_with_its_conditions(tmp_path, capsys):
    config = setup(tmp_path)
    photo = images.jpeg(tmp_path / "in" / "p.jpg", size=(640, 480))
    _, out = explain(config, photo, capsys=capsys, json_out=True)
    row = json.loads(out)
    assert row["facts"]["format"] == "jpeg" and row["facts"]["width"] == 640
    assert row["facts"]["date_source"] == "EXIF DateTimeOriginal"
    assert [(r["rule"], r["applies"]) for r in row["rules"]] == [
        ("web", False),
        ("small", True),
        ("late", True),
    ]
    assert row["rules"][0]["conditions"][1] == {
        "condition": "min_width",
        "holds": False,
        "text": "min_width 800: no, width is 640",
    }
    assert row["original"] == f"moved to {tmp_path}/archive/p.jpg"


def test_a_missing_path_is_named_and_exits_1(tmp_path, capsys):
    config = setup(tmp_path)
    code = main(["-c", str(config), "explain", str(tmp_path / "in" / "gone.jpg")])
    assert code == 1
    assert "gone.jpg: no such file or folder" in capsys.readouterr().err


def test_names_taken_are_resolved_as_the_real_run_resolves_them(tmp_path, capsys):
    """An output name and an archive name already taken: explain shows the ``-1`` names,
    and the real run then writes exactly those."""
    config = setup(tmp_path, originals="move")
    photo = images.jpeg(tmp_path / "in" / "p.jpg", size=(1000, 800))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.webp").write_bytes(b"someone else's")
    (tmp_path / "archive" / "p.jpg").write_bytes(b"an older original")
    _, out = explain(config, photo, capsys=capsys, json_out=True)
    row = json.loads(out)
    assert [o["path"] for o in row["outputs"]] == [f"{tmp_path}/out/p-1.webp"]
    assert row["original"] == f"moved to {tmp_path}/archive/p-1.jpg"
    assert main(["-c", str(config), "process", "-j", "1", str(photo)]) == 0
    capsys.readouterr()
    assert (tmp_path / "out" / "p-1.webp").stat().st_size == row["outputs"][0]["bytes"]
    assert (tmp_path / "archive" / "p-1.jpg").exists()
    assert (tmp_path / "out" / "p.webp").read_bytes() == b"someone else's"
