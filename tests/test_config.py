"""Config loading: the shipped files, where the config comes from, and error messages."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from amberpicd import paths
from amberpicd.config.loader import (
    load_config,
    parse_config,
    starter_config_text,
    write_starter,
)
from amberpicd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PACKAGED = resources.files("amberpicd.config")

# A valid config; the error cases below edit it, so its line numbers are known:
MINIMAL = """\
version: 1
rules:
  - name: web
    pipeline:
      - encode: {format: webp}
    output: /out/{stem}.{ext}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home, so ``~`` expands to a known folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.source == str(path)
    return info.value


# --- the shipped files ------------------------------------------------------------------


def test_top_level_copies_are_identical_to_the_packaged_files() -> None:
    assert (REPO / "config/default.yaml").read_bytes() == PACKAGED.joinpath(
        "default.yaml"
    ).read_bytes()
    assert (REPO / "config/example.yaml").read_bytes() == PACKAGED.joinpath(
        "starter.yaml"
    ).read_bytes()
    assert starter_config_text() == (REPO / "config/example.yaml").read_text(encoding="utf-8")


def test_example_loads_and_means_what_its_comments_say(home: Path) -> None:
    loaded = load_config(REPO / "config/example.yaml", env={})
    config = loaded.config
    pics = home / "Pictures/AmberPic"

    (watch,) = config.watch
    assert watch.inbox == pics / "Inbox"
    assert watch.recursive is False
    assert watch.rules == ("web", "thumb")
    assert watch.originals == "keep"
    assert watch.archive == pics / "Originals"
    assert watch.enabled is True

    web, thumb = config.rules
    assert web.name == "web"
    assert web.match.formats == ("jpeg", "png", "heif", "webp", "avif", "tiff", "gif", "bmp")
    assert web.match.names == ("*.jpg", "*.jpeg", "*.png", "*.heic")
    assert web.match.name_matches("IMG_1.JPG") and not web.match.name_matches("a.gif")
    assert web.match.min_width == 800
    assert web.match.max_width is None
    assert web.match.orientation == "any"
    # The watermark is shown commented out: a starter must not stamp someone else's name.
    assert [s.name for s in web.pipeline] == ["auto_orient", "resize", "encode"]
    resize, encode = web.pipeline[1:]
    assert (resize.width, resize.height, resize.mode) == (2048, 2048, "fit")
    assert resize.enlarge is False
    assert (encode.format, encode.quality, encode.lossless) == ("webp", 80, False)
    assert web.encode is encode
    assert web.keep_metadata == ("icc",)
    assert web.output == f"{pics}/Web/{{stem}}.{{ext}}"
    assert web.on_conflict == "rename"

    assert thumb.name == "thumb"
    assert thumb.match.formats is None and thumb.match.names is None
    assert [s.name for s in thumb.pipeline] == ["auto_orient", "resize", "encode"]
    assert (thumb.pipeline[1].width, thumb.pipeline[1].height) == (320, 320)
    assert thumb.pipeline[1].mode == "fill"
    assert (thumb.encode.format, thumb.encode.quality) == ("jpeg", 75)
    assert thumb.keep_metadata == ("icc",)  # the default
    assert thumb.on_conflict == "rename"
    assert thumb.output == f"{pics}/Thumbs/{{date:%Y/%m}}/{{stem}}.{{ext}}"

    assert config.rules_for(watch) == (web, thumb)
    assert config.limits.max_pixels == 100_000_000  # the documented default
    assert config.daemon == type(config.daemon)()  # its daemon: section shows the defaults


def test_embedded_default_loads(tmp_path: Path, home: Path) -> None:
    loaded = load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "nothing-here")})
    assert loaded.source is None
    assert loaded.text == PACKAGED.joinpath("default.yaml").read_text(encoding="utf-8")
    config = loaded.config
    (watch,) = config.watch
    assert watch.inbox == home / "Pictures/AmberPic/Inbox"
    assert watch.originals == "keep"
    assert watch.rules is None
    (web,) = config.rules
    assert web.name == "web"
    assert [s.name for s in web.pipeline] == ["auto_orient", "resize", "encode"]
    resize = web.pipeline[1]
    assert (resize.width, resize.height, resize.mode, resize.enlarge) == (
        2048,
        2048,
        "fit",
        False,
    )
    assert (web.encode.format, web.encode.quality) == ("webp", 80)
    assert web.keep_metadata == ("icc",)
    assert web.output == f"{home}/Pictures/AmberPic/Web/{{stem}}.{{ext}}"
    assert web.on_conflict == "rename"


# --- where the config comes from ---------------------------------------------------------


def named(folder: Path, rule: str) -> Path:
    return write(folder, MINIMAL.replace("name: web", f"name: {rule}"))


def rule_name(path: Path | None = None, env: dict[str, str] | None = None) -> str:
    return load_config(path, env=env if env is not None else {}).config.rules[0].name


def test_resolution_order(tmp_path: Path) -> None:
    explicit = named(tmp_path / "explicit", "explicit")
    from_env = named(tmp_path / "env", "from_env")
    xdg = tmp_path / "xdg"
    named(xdg / "amberpic", "xdg")
    env = {"AMBERPIC_CONFIG": str(from_env), "XDG_CONFIG_HOME": str(xdg)}

    assert rule_name(explicit, env) == "explicit"
    assert rule_name(None, env) == "from_env"
    del env["AMBERPIC_CONFIG"]
    assert rule_name(None, env) == "xdg"
    loaded = load_config(env=env)
    assert loaded.source == xdg / "amberpic/config.yaml"
    assert loaded.text == (xdg / "amberpic/config.yaml").read_text()
    (xdg / "amberpic/config.yaml").unlink()
    assert load_config(env=env).source is None  # the embedded default
    assert rule_name(None, {"AMBERPIC_CONFIG": "", "XDG_CONFIG_HOME": str(xdg)}) == "web"


def test_default_env_is_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMBERPIC_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    named(tmp_path / "amberpic", "xdg")
    assert load_config().config.rules[0].name == "xdg"
    monkeypatch.setenv("AMBERPIC_CONFIG", str(named(tmp_path / "env", "from_env")))
    assert load_config().config.rules[0].name == "from_env"


def test_a_named_file_that_is_missing_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    named(xdg / "amberpic", "xdg")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"missing\.yaml \(given with --config\) does not"):
        load_config(missing, env={"XDG_CONFIG_HOME": str(xdg)})
    env = {"AMBERPIC_CONFIG": str(missing), "XDG_CONFIG_HOME": str(xdg)}
    with pytest.raises(ConfigError, match=r"named by AMBERPIC_CONFIG\) does not exist"):
        load_config(env=env)


def test_a_dangling_default_config_symlink_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "amberpic").mkdir()
    (tmp_path / "amberpic/config.yaml").symlink_to(tmp_path / "gone.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path)})


def test_unreadable_config_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, env={})


def test_xdg_paths() -> None:
    env = {
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/c",
        "XDG_STATE_HOME": "/s",
        "XDG_RUNTIME_DIR": "/run/user/7",
    }
    assert paths.config_file(env) == Path("/c/amberpic/config.yaml")
    assert paths.state_dir(env) == Path("/s/amberpic")
    assert paths.runtime_dir(env) == Path("/run/user/7/amberpic")
    # Unset, empty or relative XDG variables fall back to the spec's defaults.
    bare = {"HOME": "/home/u", "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": "rel"}
    assert paths.config_file(bare) == Path("/home/u/.config/amberpic/config.yaml")
    assert paths.state_dir(bare) == Path("/home/u/.local/state/amberpic")
    assert paths.runtime_dir(bare) == Path("/home/u/.local/state/amberpic")


# --- errors: file, line and plain words ----------------------------------------------------

RESIZE = MINIMAL.replace("encode: {format: webp}", "resize: {width: 10, mode: fitt}")

ERRORS = {
    "unknown top-level key": (
        MINIMAL + "rulez: []\n",
        7,
        "unknown key 'rulez'",
    ),
    "unknown key in a rule": (
        MINIMAL.replace("    output:", "    outptu: x\n    output:"),
        6,
        "rules[0]: unknown key 'outptu'",
    ),
    "unknown key in match": (
        MINIMAL.replace("    pipeline:", "    match:\n      min_widht: 800\n    pipeline:"),
        5,
        "rules[0].match: unknown key 'min_widht'",
    ),
    "unknown key in an operation": (
        MINIMAL.replace("{format: webp}", "{format: webp, qualty: 80}"),
        5,
        "rules[0].pipeline[0].encode: unknown key 'qualty'",
    ),
    "unknown key in a watch entry": (
        MINIMAL + "watch:\n  - inbox: /in\n    recursve: true\n",
        9,
        "watch[0]: unknown key 'recursve'",
    ),
    "unknown key in limits": (
        MINIMAL + "limits:\n  max_pixel: 5\n",
        8,
        "limits: unknown key 'max_pixel'",
    ),
    "unknown key in per-inbox limits": (
        MINIMAL + "watch:\n  - inbox: /in\n    limits:\n      max_frame: 2\n",
        10,
        "watch[0].limits: unknown key 'max_frame'",
    ),
    "unknown operation": (
        MINIMAL.replace(
            "      - encode", "      - auto_orient\n      - resiz: {width: 5}\n      - encode"
        ),
        6,
        "rules[0].pipeline[1]: unknown operation 'resiz' (expected one of: ",
    ),
    "unknown literal in an operation": (
        RESIZE,
        5,
        "rules[0].pipeline[0].resize: unknown mode 'fitt' (expected fit, fill, exact)",
    ),
    "unknown literal in a watch entry": (
        MINIMAL + "watch:\n  - inbox: /in\n    originals: archive\n",
        9,
        "watch[0]: unknown originals 'archive' (expected keep, move, trash, delete)",
    ),
    "unknown item of a list": (
        MINIMAL.replace(
            "    pipeline:",
            "    match:\n      formats:\n        - jpeg\n        - jpg2\n    pipeline:",
        ),
        7,
        "rules[0].match: unknown format 'jpg2' (expected jpeg, png, heif, webp, avif, tiff,",
    ),
    "a word for a number": (
        MINIMAL.replace("{format: webp}", "{format: webp, quality: high}"),
        5,
        "rules[0].pipeline[0].encode.quality: expected a whole number, got 'high'",
    ),
    "a word for a boolean": (
        MINIMAL + "watch:\n  - inbox: /in\n    recursive: maybe\n",
        9,
        "watch[0].recursive: expected true or false, got 'maybe'",
    ),
    "a word for a float": (
        MINIMAL + "limits:\n  job_timeout: soon\n",
        8,
        "limits.job_timeout: expected a number, got 'soon'",
    ),
    "a word for a size": (
        MINIMAL + "limits:\n  max_file_bytes: lots\n",
        8,
        "limits.max_file_bytes: expected a size such as 500KB or 2MiB, got 'lots'",
    ),
    "a mapping for a list": (
        MINIMAL + "watch: {inbox: /in}\n",
        7,
        "watch: expected a list, got a mapping",
    ),
    "a number out of range": (
        MINIMAL.replace("{format: webp}", "{format: webp, quality: 0}"),
        5,
        "rules[0].pipeline[0].encode.quality: must be greater than or equal to 1, got 0",
    ),
    "move without archive": (
        MINIMAL + "watch:\n  - inbox: /in\n    originals: move\n",
        8,
        "watch[0]: originals: move needs an archive folder",
    ),
    "missing required key in a rule": (
        MINIMAL.replace("    output: /out/{stem}.{ext}\n", ""),
        3,
        "rules[0]: missing required key 'output'",
    ),
    "missing required key at the top": (
        "version: 1\n",
        1,
        "missing required key 'rules'",
    ),
    "missing required option of an operation": (
        MINIMAL.replace("{format: webp}", "{quality: 80}"),
        5,
        "rules[0].pipeline[0].encode: missing required key 'format'",
    ),
    "an operation's own check": (
        MINIMAL.replace("encode: {format: webp}", "resize: {scale: 2}"),
        5,
        "rules[0].pipeline[0].resize: scale 2.0 enlarges the image: add enlarge: true",
    ),
    "an operation's check, written as its bare name": (
        MINIMAL.replace("- encode: {format: webp}", "- resize"),
        5,
        "rules[0].pipeline[0].resize: give width, height (or both), or scale",
    ),
    "a pipeline step with two keys": (
        MINIMAL.replace("{format: webp}", "{format: webp}\n        quality: 80"),
        5,
        "rules[0].pipeline[0]: a pipeline step is an operation name, or a mapping",
    ),
    "encode not last": (
        MINIMAL.replace(
            "      - encode: {format: webp}\n",
            "      - encode: {format: webp}\n      - auto_orient\n",
        ),
        4,
        "rules[0].pipeline: encode must be the last step of a pipeline",
    ),
    "empty pipeline": (
        MINIMAL.replace("    pipeline:\n      - encode: {format: webp}\n", "    pipeline: []\n"),
        4,
        "rules[0].pipeline: needs at least 1 item",
    ),
    "bad template field": (
        MINIMAL.replace("{stem}.{ext}", "{stme}.{ext}"),
        6,
        "rules[0].output: unknown template field {stme} (expected stem, name, ext,",
    ),
    "bad rule name": (
        MINIMAL.replace("name: web", "name: my web"),
        3,
        "rules[0].name: 'my web' does not match the pattern",
    ),
    "wrong version": (
        MINIMAL.replace("version: 1", "version: 2"),
        1,
        "unknown version 2 (expected 1)",
    ),
    "duplicate rule names": (
        MINIMAL + "  - name: thumb\n    pipeline: [auto_orient]\n    output: /t/{stem}\n"
        "  - name: web\n    pipeline: [auto_orient]\n    output: /w/{stem}\n",
        10,
        "rules[2].name: duplicate rule name 'web' (also rules[0])",
    ),
    "watch naming an unknown rule": (
        MINIMAL + "watch:\n  - inbox: /in\n    rules:\n      - web\n      - thumb\n",
        11,
        "watch[0].rules: unknown rule 'thumb' (expected one of: web)",
    ),
    "duplicate YAML key in a rule": (
        MINIMAL + "    output: /other/{stem}\n",
        7,
        "rules[0]: duplicate key 'output'",
    ),
    "duplicate YAML key at the top": (
        MINIMAL + "version: 1\n",
        7,
        "duplicate key 'version'",
    ),
    "duplicate YAML key in a flow mapping": (
        MINIMAL.replace("{format: webp}", "{format: webp, format: png}"),
        5,
        "rules[0].pipeline[0].encode: duplicate key 'format'",
    ),
    "YAML syntax error": (
        MINIMAL.replace("    pipeline:", "   pipeline:"),
        4,
        "invalid YAML: expected <block end>",
    ),
    "YAML unclosed bracket": (
        MINIMAL.replace("{format: webp}", "{format: webp"),
        6,
        "invalid YAML: expected ',' or '}', but got",
    ),
    "not a mapping": (
        "- web\n- thumb\n",
        1,
        "the config must be a mapping of keys",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_error_names_file_line_and_problem(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    error = load_error(tmp_path, text)
    assert error.line == line
    assert str(error).startswith(f"config.yaml:{line}: {message}")
    assert error.message.startswith(message)


def test_unknown_operation_lists_the_known_ones(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace("encode: {format: webp}", "resiz: {width: 5}"))
    # (The list ends before the "; did you mean 'resize'?" that follows it.)
    known = error.message.split("(expected one of: ", 1)[1].split(")")[0].split(", ")
    assert {"auto_orient", "resize", "watermark", "encode"} <= set(known)
    assert known == sorted(known)


def test_unquoted_template_gets_a_hint(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace("/out/{stem}.{ext}", "{stem}.{ext}"))
    assert error.line == 6
    assert str(error).startswith("config.yaml:6: invalid YAML: ")
    assert str(error).endswith('; quote a value that starts with { or [, e.g. "{stem}.{ext}"')


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n", "---\n"])
def test_empty_config(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert str(error) == "config.yaml: empty config"


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == "config.yaml:7: not UTF-8 text"


# --- paths ------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICS", str(tmp_path / "pics"))
    folder = tmp_path / "conf"
    text = """\
watch:
  - inbox: inbox
    originals: move
    archive: ../archive
  - inbox: $PICS/drop
rules:
  - name: web
    pipeline:
      - watermark: {image: logo.png, opacity: 0.3}
    output: out/{rule}/{stem}.{ext}
  - name: thumb
    pipeline:
      - watermark: {text: hi, font: ~/fonts/a.ttf}
    output: ~/thumbs/{stem}.{ext}
"""
    config = load_config(write(folder, text), env={}).config
    assert config.watch[0].inbox == folder / "inbox"
    assert config.watch[0].archive == folder / "../archive"
    assert config.watch[1].inbox == tmp_path / "pics/drop"
    web, thumb = config.rules
    assert web.output == f"{folder}/out/{{rule}}/{{stem}}.{{ext}}"
    assert web.pipeline[0].image == folder / "logo.png"
    assert thumb.output == f"{home}/thumbs/{{stem}}.{{ext}}"
    assert thumb.pipeline[0].font == home / "fonts/a.ttf"

    # A relative config path still anchors at the config's (absolute) folder.
    monkeypatch.chdir(tmp_path)
    loaded = load_config(Path("conf/config.yaml"), env={})
    assert loaded.source == folder / "config.yaml"
    assert loaded.config.watch[0].inbox == folder / "inbox"


def test_without_base_dir_relative_paths_stay_relative() -> None:
    text = MINIMAL.replace("/out/", "out/") + "watch:\n  - inbox: in\n"
    config = parse_config(text, "config.yaml", None)
    assert config.watch[0].inbox == Path("in")
    assert config.rules[0].output == "out/{stem}.{ext}"


# --- the starter config ---------------------------------------------------------------------


def test_write_starter_writes_a_loadable_file(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "new/folders/config.yaml"
    write_starter(path)
    assert path.read_text(encoding="utf-8") == starter_config_text()
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    config = load_config(path, env={}).config
    assert [r.name for r in config.rules] == ["web", "thumb"]
    assert os.listdir(path.parent) == ["config.yaml"]  # no temporary file left behind


def test_write_starter_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path, "mine\n")
    with pytest.raises(ConfigError, match="exists; not overwriting"):
        write_starter(path)
    assert path.read_text() == "mine\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- folders that overlap -----------------------------------------------------------------

OVERLAP = """\
version: 1
watch:
  - inbox: {inbox0}
    recursive: {recursive}
  - inbox: {inbox1}
    originals: move
    archive: {archive}
rules:
  - name: web
    pipeline: [{{encode: webp}}]
    output: {output}
"""


def overlap(tmp_path: Path, **kw: object) -> str:
    values = {
        "inbox0": tmp_path / "Inbox",
        "recursive": "true",
        "inbox1": tmp_path / "Other",
        "archive": tmp_path / "Archive",
        "output": f"{tmp_path}/Out/{{stem}}.{{ext}}",
        **kw,
    }
    return OVERLAP.format(**values)


def test_distinct_folders_are_valid_and_nested_inboxes_too(tmp_path: Path) -> None:
    # The control for the cases below; a nested inbox is allowed (the deepest owns a file),
    # and so is an output in a sub-folder of a non-recursive inbox (sub-folders are unwatched).
    for text in (
        overlap(tmp_path),
        overlap(tmp_path, inbox1=tmp_path / "Inbox" / "Sub"),
        overlap(tmp_path, recursive="false", output=f"{tmp_path}/Inbox/done/{{stem}}.{{ext}}"),
        overlap(tmp_path, archive=tmp_path / "Other" / "Archive"),  # Other is not recursive
    ):
        parse_config(text, "config.yaml", tmp_path)


def test_two_watch_entries_for_one_folder(tmp_path: Path) -> None:
    (tmp_path / "Inbox").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "Inbox")
    for same in (tmp_path / "Inbox", tmp_path / "Other" / ".." / "Inbox", tmp_path / "alias"):
        error = load_error(tmp_path, overlap(tmp_path, inbox1=same))
        assert str(error) == "config.yaml:5: watch[1].inbox: same folder as watch[0].inbox"


def test_output_folder_inside_a_recursive_inbox(tmp_path: Path) -> None:
    error = load_error(tmp_path, overlap(tmp_path, output=f"{tmp_path}/Inbox/web/{{stem}}.webp"))
    assert str(error) == (
        f"config.yaml:11: rules[0].output: output folder {tmp_path}/Inbox/web (rule web) is "
        f"inside the recursive inbox {tmp_path}/Inbox of watch[0]; outputs would be taken as "
        "new files"
    )


@pytest.mark.parametrize("recursive", ["true", "false"])
def test_output_folder_that_is_an_inbox(tmp_path: Path, recursive: str) -> None:
    output = f"{tmp_path}/Inbox/{{stem}}.webp"
    error = load_error(tmp_path, overlap(tmp_path, recursive=recursive, output=output))
    assert str(error) == (
        f"config.yaml:11: rules[0].output: output folder {tmp_path}/Inbox (rule web) is the "
        "inbox of watch[0]; outputs would be taken as new files"
    )
    # An inbox that is another rule's output folder is the same mistake, seen from there.
    error = load_error(tmp_path, overlap(tmp_path, inbox1=f"{tmp_path}/Out"))
    assert str(error).startswith(
        f"config.yaml:11: rules[0].output: output folder {tmp_path}/Out (rule web) is the "
        "inbox of watch[1]"
    )


def test_archive_inside_a_recursive_inbox_or_an_inbox(tmp_path: Path) -> None:
    error = load_error(tmp_path, overlap(tmp_path, archive=tmp_path / "Inbox" / "old"))
    assert str(error) == (
        f"config.yaml:7: watch[1].archive: archive {tmp_path}/Inbox/old is inside the recursive "
        f"inbox {tmp_path}/Inbox of watch[0]; moved originals would be taken as new files"
    )
    error = load_error(tmp_path, overlap(tmp_path, archive=tmp_path / "Other"))
    assert str(error).startswith("config.yaml:7: watch[1].archive: archive ")
    assert "is the inbox of watch[1]" in str(error)


def test_check_rejects_an_overlap(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(tmp_path, overlap(tmp_path, inbox1=tmp_path / "Inbox"))
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(path), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc
    assert "config.yaml:5: watch[1].inbox: same folder as watch[0].inbox" in proc.stderr


def test_on_conflict_and_originals_load_as_typed_enums(tmp_path: Path) -> None:
    """The YAML values are unchanged; in code they are members of OnConflict and Originals
    (which are str, so comparing with the YAML word still holds)."""
    from amberpicd.config.schema import OnConflict, Originals

    text = MINIMAL.replace("    output:", "    on_conflict: skip\n    output:")
    text += f"watch:\n  - inbox: {tmp_path}/in\n    originals: trash\n"
    config = load_config(write(tmp_path, text), env={}).config
    assert config.rules[0].on_conflict is OnConflict.SKIP
    assert config.watch[0].originals is Originals.TRASH
    assert config.watch[0].originals == "trash"
    assert [m.value for m in OnConflict] == ["rename", "overwrite", "skip"]
    assert [m.value for m in Originals] == ["keep", "move", "trash", "delete"]
