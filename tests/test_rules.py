from pathlib import Path

import pytest
from rulefacts import facts

from amberpicd.config.schema import Match, Rule
from amberpicd.imaging.sniff import sniff
from amberpicd.rules.match import conditions_hold, matching_rules


@pytest.mark.parametrize(
    ("condition", "holds", "fails"),
    [
        ({"formats": ["jpeg", "png"]}, {}, {"format": "gif"}),
        ({"formats": ["jpg"]}, {}, {"format": "png"}),  # alias
        ({"formats": ["heic"]}, {"format": "heif"}, {}),
        ({"names": ["*.jpg"]}, {}, {"path": Path("/in/a.png")}),  # case-insensitive
        ({"min_width": 4000}, {}, {"width": 3999}),
        ({"max_width": 4000}, {}, {"width": 4001}),
        ({"min_height": 3000}, {}, {"height": 2999}),
        ({"max_height": 3000}, {}, {"height": 3001}),
        ({"min_pixels": 12_000_000}, {}, {"width": 3999}),
        ({"max_pixels": 12_000_000}, {}, {"width": 4001}),
        ({"min_bytes": "2MB"}, {}, {"size_bytes": 1_999_999}),
        ({"max_bytes": "2MB"}, {}, {"size_bytes": 2_000_001}),
        ({"orientation": "landscape"}, {}, {"width": 3000, "height": 4000}),
        ({"orientation": "portrait"}, {"width": 3000, "height": 4000}, {}),
        ({"orientation": "square"}, {"width": 10, "height": 10}, {}),
    ],
)
def test_each_condition(condition, holds, fails):
    match = Match.model_validate(condition)
    assert conditions_hold(match, facts(**holds))
    if fails:
        assert not conditions_hold(match, facts(**fails))


def test_all_conditions_must_hold_and_empty_match_takes_everything():
    both = Match.model_validate({"formats": ["jpeg"], "min_width": 5000})
    assert not conditions_hold(both, facts())
    assert conditions_hold(Match(), facts(format="gif", width=1, height=1))


def rule(name: str, stop: bool = False, **match) -> Rule:
    return Rule.model_validate(
        {"name": name, "match": match, "pipeline": ["auto_orient"], "output": "/o/{stem}.{ext}"}
        | ({"stop": True} if stop else {})
    )


def test_every_matching_rule_runs_in_order_and_stop_ends_the_list():
    rules = [rule("a", formats=["png"]), rule("b"), rule("c", stop=True), rule("d")]
    assert [r.name for r in matching_rules(rules, facts())] == ["b", "c"]
    assert [r.name for r in matching_rules(rules[:2], facts(format="png"))] == ["a", "b"]


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"GIF89a", "gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"BM" + b"\0" * 20, "bmp"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "heif"),
        (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf", "avif"),
        (b"8BPS\0\x01", "psd"),
        (b"%!PS-Adobe-3.0 EPSF", "eps"),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff(head, fmt):
    assert sniff(head) == fmt
