"""`amberpicd check` and `init` as a newcomer meets them: every mistake in one run, each
with its line and a "did you mean" for a near miss; YAML's `off`; the starter config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from clirun import run_cli

from amberpicd.config.loader import load_config, parse_config, starter_config_text
from amberpicd.config.messages import known_keys
from amberpicd.errors import ConfigError


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "AMBERPIC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


RULE = """
rules:
  - name: web
    pipeline: [{encode: webp}]
    output: /out/{stem}.{ext}
"""


@pytest.mark.parametrize("word", ["off", "Off", "no", '"off"'])
def test_notify_off_as_yaml_reads_it(word: str) -> None:
    # YAML 1.1 reads a bare off (and no) as false; the README writes `notify: off`.
    config = parse_config(f"daemon: {{notify: {word}}}\n{RULE}", "config.yaml", None)
    assert config.daemon.notify == "off"


def test_notify_true_is_still_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"daemon: {{notify: on}}\n{RULE}", "config.yaml", None)
    assert "notify" in str(info.value)


THREE_MISTAKES = """\
version: 1
watch:
  - inbox: /tmp/in
    orignals: keep
    recursive: maybe
rules:
  - name: web
    pipeline:
      - auto_orient
      - resise: {width: 10}
      - resize: {widht: 10, mode: fitt}
    output: /out/{stem}.{ext}
    keep_metadta: [icc]
"""


def test_check_lists_every_error_with_its_line_and_a_suggestion(tmp_path, home, capsys) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(THREE_MISTAKES)
    code, out, err = run_cli("check", "-c", str(bad), capsys=capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines == [
        "amberpicd: config.yaml:4: watch[0]: unknown key 'orignals' (did you mean 'originals'?)",
        "amberpicd: config.yaml:5: watch[0].recursive: expected true or false, got 'maybe'",
        "amberpicd: config.yaml:10: rules[0].pipeline[1]: unknown operation 'resise' "
        "(expected one of: auto_orient, background, crop, encode, flip, grayscale, optimize, "
        "resize, rotate, sharpen, to_srgb, watermark); did you mean 'resize'?",
        "amberpicd: config.yaml:11: rules[0].pipeline[2].resize: unknown mode 'fitt' "
        "(expected fit, fill, exact); did you mean 'fit'?",
        "amberpicd: config.yaml:11: rules[0].pipeline[2].resize: unknown key 'widht' "
        "(did you mean 'width'?)",
        "amberpicd: config.yaml:13: rules[0]: unknown key 'keep_metadta' "
        "(did you mean 'keep_metadata'?)",
    ]


def test_one_mistake_reads_as_before_and_the_error_says_how_many_more(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(THREE_MISTAKES, tmp_path / "config.yaml", None)
    error = info.value
    assert error.line == 4 and error.message.startswith("watch[0]: unknown key 'orignals'")
    # The daemon shows str() in its status and tray: the first, and a pointer to the rest.
    assert str(error).endswith("(and 5 more: `amberpicd check` lists them)")
    assert [e.line for e in error.errors] == [4, 5, 10, 11, 11, 13]


def test_a_far_miss_gets_no_suggestion(tmp_path) -> None:
    text = RULE.replace("output:", "zzzzqqq: 1\n    output:")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "config.yaml", None)
    assert str(info.value) == "config.yaml:5: rules[0]: unknown key 'zzzzqqq'"


def test_watch_naming_a_misspelt_rule_gets_a_suggestion() -> None:
    text = "watch:\n  - inbox: /in\n    rules: [wbe]\n" + RULE
    with pytest.raises(ConfigError) as info:
        parse_config(text, "config.yaml", None)
    assert str(info.value) == (
        "config.yaml:3: watch[0].rules: unknown rule 'wbe' (expected one of: web); "
        "did you mean 'web'?"
    )


def test_every_mapping_of_the_schema_knows_its_keys() -> None:
    assert "originals" in known_keys(("watch", 0))
    assert "keep_metadata" in known_keys(("rules", 3))
    assert "min_width" in known_keys(("rules", 0, "match"))
    assert "width" in known_keys(("rules", 0, "pipeline", 2, "resize"))
    assert "max_frames" in known_keys(("watch", 0, "limits"))
    assert "notify" in known_keys(("daemon",))
    assert "rules" in known_keys(())
    assert known_keys(("rules", 0, "pipeline", 0, "nosuch")) == ()


def test_init_with_a_path_suggests_check_with_that_path(tmp_path, home, capsys) -> None:
    target = tmp_path / "my configs" / "custom.yaml"
    code, out, _ = run_cli("init", "-c", str(target), capsys=capsys)
    assert code == 0 and target.exists()
    suggested = re.search(r"`([^`]*)`", out)[1]
    assert shlex.split(suggested) == ["amberpicd", "check", "-c", str(target)]
    # ...and what it suggests works.
    code, out, _ = run_cli(*shlex.split(suggested)[1:], capsys=capsys)
    assert code == 0 and f"{target}: valid" in out


def test_init_without_a_path_suggests_plain_check(home, capsys) -> None:
    code, out, _ = run_cli("init", capsys=capsys)
    assert code == 0 and (home / ".config/amberpic/config.yaml").exists()
    assert out.rstrip().endswith("then run `amberpicd check`")


def test_second_init_is_a_usage_error_and_changes_nothing(tmp_path, home, capsys) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("# mine\n")
    code, _, err = run_cli("init", "-c", str(target), capsys=capsys)
    assert code == 2 and "exists; not overwriting; edit it, or name another file with -c" in err
    assert target.read_text() == "# mine\n"


def test_starter_stamps_no_watermark_and_shows_the_daemon_section(home) -> None:
    text = starter_config_text()
    data = yaml.safe_load(text)
    steps = [
        s if isinstance(s, str) else next(iter(s)) for r in data["rules"] for s in r["pipeline"]
    ]
    assert "watermark" not in steps
    assert "Jane" not in text
    assert set(data["daemon"]) >= {"notify", "tray"}
    assert data["daemon"]["notify"] == "errors"  # a word YAML keeps as a word
    config = parse_config(text, "starter.yaml", None)
    assert config.daemon.notify == "errors" and config.daemon.tray is True


def test_check_names_the_file_it_checked(tmp_path, home, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(RULE)
    code, out, _ = run_cli("check", "-c", str(path), capsys=capsys)
    assert code == 0 and out.splitlines()[0] == f"{path}: valid"
    assert load_config(path).source == path
