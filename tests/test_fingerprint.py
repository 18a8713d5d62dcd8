from amberpicd.config.schema import Config
from amberpicd.rules.fingerprint import fingerprint


def config(quality: int = 80, max_pixels: int = 1000, originals: str = "keep") -> Config:
    return Config.model_validate(
        {
            "limits": {"max_pixels": max_pixels},
            "watch": [{"inbox": "/in", "originals": originals, "archive": "/a"}],
            "rules": [
                {
                    "name": "web",
                    "pipeline": [{"encode": {"format": "webp", "quality": quality}}],
                    "output": "/o/{stem}.{ext}",
                },
                {"name": "other", "pipeline": ["grayscale"], "output": "/g/{stem}.{ext}"},
            ],
        }
    )


def test_changing_a_rule_changes_the_fingerprint():
    assert fingerprint(config().rules) == fingerprint(config().rules)
    assert fingerprint(config().rules) != fingerprint(config(quality=81).rules)


def test_unrelated_rules_limits_and_originals_do_not():
    web = config().rules[:1]
    assert fingerprint(web) == fingerprint(config(quality=80, max_pixels=5).rules[:1])
    assert fingerprint(web) == fingerprint(config(originals="move").rules[:1])
    assert fingerprint(web) != fingerprint(config().rules)
