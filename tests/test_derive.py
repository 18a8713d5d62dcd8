"""Several outputs from one decode: smaller outputs start from a larger one's resized picture
when that is safe (amberpicd/engine/derive.py), and orientation is applied after shrinking
(plan.turn_late). Both must give what the plain order gives."""

from __future__ import annotations

from pathlib import Path

import images
import pytest
from PIL import Image, ImageChops, ImageStat

from amberpicd.config.schema import Limits, Rule
from amberpicd.engine import plan
from amberpicd.engine.job import FileJob
from amberpicd.engine.pipeline import run
from amberpicd.imaging import resample as resample_module


def rule(name: str, out: Path, *ops, fmt: str = "png") -> Rule:
    pipeline_items = [*ops, {"encode": {"format": fmt}}]
    return Rule.model_validate(
        {"name": name, "pipeline": pipeline_items, "output": f"{out}/{name}/{{stem}}.{{ext}}"}
    )


def fit(box: int, **kw) -> dict:
    return {"resize": {"width": box, "height": box, "mode": "fit", **kw}}


@pytest.fixture
def resampled(monkeypatch) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(input size, output size) of every resample the pipeline does."""
    calls = []
    real = resample_module.resample  # resize imports it when it runs (no Pillow at import)

    def spy(im, size, method, box=None):
        calls.append((im.size, size))
        return real(im, size, method, box)

    monkeypatch.setattr(resample_module, "resample", spy)
    return calls


def process(path: Path, *rules: Rule, tag: str = "t") -> dict[str, Image.Image]:
    result = run(FileJob(path=path, rules=rules, limits=Limits(), tag=tag))
    assert result.status == "staged", result.error
    assert [o.rule for o in result.outputs] == [r.name for r in rules]  # rule order kept
    out = {}
    for o in result.outputs:
        with Image.open(o.staged.temp) as im:
            out[o.rule] = im.convert("RGB")
        o.staged.temp.unlink()
    return out


def close(a: Image.Image, b: Image.Image, limit: float = 3.0) -> bool:
    assert a.size == b.size
    return max(ImageStat.Stat(ImageChops.difference(a, b)).rms) < limit


@pytest.mark.parametrize("thumb_first", [False, True])
def test_a_thumbnail_starts_from_the_web_version(tmp_path, resampled, thumb_first):
    src = images.jpeg(tmp_path / "a.jpg", size=(1600, 1200))
    # 900 px: more than half the source, so the JPEG decodes at full size (no draft).
    web, thumb = rule("web", tmp_path, "auto_orient", fit(900)), rule("thumb", tmp_path, fit(160))
    rules = (thumb, web) if thumb_first else (web, thumb)
    out = process(src, *rules)
    assert resampled == [((1600, 1200), (900, 675)), ((900, 675), (160, 120))]
    alone = process(src, thumb, tag="alone")["thumb"]
    assert out["thumb"].size == (160, 120) and close(out["thumb"], alone)
    assert images.corner_is_marker(out["thumb"])


@pytest.mark.parametrize(
    ("web_ops", "thumb_ops"),
    [
        (["auto_orient", fit(900)], [fit(400)]),  # only 2.25x larger: not enough margin
        (["auto_orient", fit(900), "grayscale"], [fit(160)]),  # web is not just a resize
        ([{"resize": {"width": 900, "height": 400, "mode": "fill"}}], [fit(160)]),  # cropped
        (["auto_orient", fit(900)], ["grayscale", fit(160)]),  # thumb does more first
        (["auto_orient", fit(900, resample="nearest")], [fit(160)]),  # aliased web
    ],
)
def test_no_derivation_when_it_could_change_the_result(tmp_path, resampled, web_ops, thumb_ops):
    src = images.jpeg(tmp_path / "a.jpg", size=(1600, 1200))
    out = process(src, rule("web", tmp_path, *web_ops), rule("thumb", tmp_path, *thumb_ops))
    thumb_input = next(src for src, size in resampled if size == out["thumb"].size)
    assert thumb_input != out["web"].size


def test_a_fill_thumbnail_from_the_web_version_keeps_its_crop(tmp_path, resampled):
    src = images.jpeg(tmp_path / "a.jpg", size=(1600, 1200))
    fill = {"resize": {"width": 120, "height": 120, "mode": "fill", "gravity": "north-west"}}
    out = process(src, rule("web", tmp_path, fit(900)), rule("sq", tmp_path, fill))
    assert resampled[-1][0] == (900, 675)
    alone = process(src, rule("sq", tmp_path, fill), tag="alone")["sq"]
    assert out["sq"].size == (120, 120) and close(out["sq"], alone)
    assert images.corner_is_marker(out["sq"])


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_turning_after_shrinking_gives_the_same_upright_picture(tmp_path, resampled, orientation):
    src = images.jpeg(tmp_path / "a.jpg", size=(900, 600), orientation=orientation)
    out = process(src, rule("web", tmp_path, fit(500)))["web"]
    assert out.size == (500, 333)
    # Resampled as stored (on its side for 5-8), turned upright afterwards.
    stored = (600, 900) if orientation >= 5 else (900, 600)
    assert resampled == [(stored, (333, 500) if orientation >= 5 else (500, 333))]
    assert images.corner_is_marker(out)
    upright = images.upright(900, 600).resize((500, 333), Image.Resampling.LANCZOS)
    assert close(out, upright, 4.0)


def test_turn_late_leaves_fill_and_explicit_orders_alone():
    fill = Rule.model_validate(
        {
            "name": "f",
            "pipeline": ["auto_orient", {"resize": {"width": 9, "height": 9, "mode": "fill"}}],
            "output": "/o/{stem}.{ext}",
        }
    )
    ops = plan.steps(fill)
    assert plan.turn_late(ops, 6) == ops
    late = Rule.model_validate(
        {"name": "l", "pipeline": [fit(50), "auto_orient"], "output": "/o/{stem}.{ext}"}
    )
    assert plan.turn_late(plan.steps(late), 6) == plan.steps(late)
    fitted = Rule.model_validate(
        {"name": "w", "pipeline": [{"resize": {"width": 80}}], "output": "/o/{stem}.{ext}"}
    )
    turned = plan.turn_late(plan.steps(fitted), 6)
    assert [op.name for op in turned] == ["resize", "auto_orient"]
    assert (turned[0].width, turned[0].height) == (None, 80)
    assert plan.turn_late(plan.steps(fitted), 1) == plan.steps(fitted)
