"""Plan once (engine/plan.py): each rule's steps are derived once per file, before decoding,
and the plan says the decode size, the order of outputs, the steps each runs and which earlier
outputs it may start from."""

from __future__ import annotations

from pathlib import Path

import images
import pytest

from amberpicd.config.schema import Limits, Rule
from amberpicd.engine import plan
from amberpicd.engine.pipeline import FileJob, run
from amberpicd.ops import auto_orient


def rule(name: str, *ops, fmt: str = "png") -> Rule:
    return Rule.model_validate(
        {"name": name, "pipeline": [*ops, {"encode": {"format": fmt}}], "output": "/o/{stem}.{ext}"}
    )


def fit(box: int, **kw) -> dict:
    return {"resize": {"width": box, "height": box, "mode": "fit", **kw}}


def test_the_plan_orders_outputs_and_names_what_each_may_start_from() -> None:
    rules = [
        rule("thumb", fit(160)),
        rule("web", "auto_orient", fit(900)),
        rule("tilt", {"rotate": 30}),
    ]
    file = plan.file_plan([plan.rule_plan(r) for r in rules], (1600, 1200), 1)
    # tilt's size (expanded canvas) is unknown before pixels: first; then web, then thumb.
    assert [o.rule.rule.name for o in file.outputs] == ["tilt", "web", "thumb"]
    assert [o.index for o in file.outputs] == [2, 1, 0]
    assert [o.size for o in file.outputs] == [None, (900, 675), (160, 120)]
    assert [o.sources for o in file.outputs] == [(), (), (1,)]  # thumb may start from web
    assert file.decode is None  # the free rotation needs every pixel


def test_the_plan_decodes_small_when_every_rule_allows_and_turns_late() -> None:
    rules = [rule("web", fit(500))]
    file = plan.file_plan([plan.rule_plan(r) for r in rules], (900, 600), 6)
    (out,) = file.outputs
    assert [op.name for op in out.rule.steps] == ["auto_orient", "resize"]
    assert [op.name for op in out.ops] == ["resize", "auto_orient"]  # the turn moves less
    assert (out.ops[0].width, out.ops[0].height) == (500, 500)
    assert file.decode is not None and file.decode[0] < 900  # shrink on load
    upright = plan.file_plan([plan.rule_plan(r) for r in rules], (900, 600), 1)
    assert upright.outputs[0].ops == upright.outputs[0].rule.steps


def test_rule_plans_say_what_the_rule_needs() -> None:
    web = plan.rule_plan(rule("web", fit(900)))
    assert web.reusable and web.lead is not None and not web.wants_source and not web.as_stored
    same = plan.rule_plan(rule("o", "auto_orient", fmt="jpeg"))
    assert same.as_stored and same.lead is None and not same.reusable
    opt = plan.rule_plan(
        Rule.model_validate({"name": "x", "pipeline": ["optimize"], "output": "/o/{stem}.{ext}"})
    )
    assert opt.wants_source and opt.as_stored
    grey = plan.rule_plan(rule("g", fit(900), "grayscale"))
    assert not grey.reusable and grey.lead is not None


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_file_derives_each_rules_steps_once(tmp_path: Path, monkeypatch, orientation) -> None:
    """Control of "plan once": count the orientation step's derivation during a whole run."""
    calls = []
    real = auto_orient.oriented_first

    def counted(ops):
        calls.append(ops)
        return real(ops)

    monkeypatch.setattr(plan, "oriented_first", counted)
    src = images.jpeg(tmp_path / "a.jpg", size=(1600, 1200), orientation=orientation)
    rules = tuple(
        Rule.model_validate(
            {
                "name": name,
                "pipeline": ops,
                "output": f"{tmp_path}/{name}/{{stem}}.{{ext}}",
            }
        )
        for name, ops in [
            ("web", [fit(900)]),
            ("thumb", [fit(160)]),
            ("sq", [fit(90), "grayscale"]),
        ]
    )
    result = run(FileJob(path=src, rules=rules, limits=Limits(), tag="t"))
    assert result.status == "staged", result.error
    assert [o.rule for o in result.outputs] == ["web", "thumb", "sq"]
    assert len(calls) == len(rules)
    for out in result.outputs:
        out.staged.temp.unlink()
