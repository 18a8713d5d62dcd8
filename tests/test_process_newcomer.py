"""`amberpicd process` as a newcomer meets it (issue 14): non-images skipped quietly, the
last line, dry-run names, errors that say where the file is, and every --help page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import images
import pytest
from clirun import json_lines, run_cli, write_config

from amberpicd.cli.main import main


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "AMBERPIC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


def simple_config(tmp_path: Path, on_conflict: str = "rename") -> Path:
    return write_config(
        tmp_path,
        f"""
rules:
  - name: web
    pipeline: [{{resize: {{width: 100}}}}, {{encode: webp}}]
    output: {tmp_path}/out/{{stem}}.{{ext}}
    on_conflict: {on_conflict}
""",
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder as people have them: photos, and files that are no images at all."""
    src = tmp_path / "site"
    (src / "generator").mkdir(parents=True)
    images.jpeg(src / "p1.jpg", (640, 480))
    images.jpeg(src / "generator" / "p2.jpg", (640, 480))
    (src / "README.txt").write_text("my site\n")
    (src / "generator" / "Makefile").write_text("all:\n\ttrue\n")
    return src


def test_non_images_are_skipped_quietly_counted_and_listed_with_verbose(
    tmp_path: Path, home, capsys, project: Path
):
    cfg = simple_config(tmp_path)
    code, out, err = run_cli("-c", str(cfg), "process", str(project), capsys=capsys)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["done", "done"]
    assert any(line.startswith("done    generator/p2.jpg: wrote ") for line in out.splitlines())
    assert "README" not in out + err and "Makefile" not in out + err
    assert err.splitlines()[-1].startswith("2 done, 2 skipped, 0 failed · ")

    code, out, err = run_cli("-c", str(cfg), "process", "--json", str(project), capsys=capsys)
    rows = json_lines(out)
    assert code == 0
    assert rows["README.txt"]["status"] == rows["Makefile"]["status"] == "skipped"
    assert rows["Makefile"]["error"] == "Makefile: not an image"  # "source" says where
    assert rows["p1.jpg"]["status"] == "already"  # done by the first run (the journal knows)

    code, out, _ = run_cli("-c", str(cfg), "-v", "process", str(project), capsys=capsys)
    assert code == 0
    assert "skipped README.txt: not an image" in out.splitlines()
    assert "skipped generator/Makefile: not an image" in out.splitlines()


def test_a_file_named_as_an_image_that_is_none_still_fails(tmp_path: Path, home, capsys):
    cfg = simple_config(tmp_path)
    (tmp_path / "notes.jpg").write_text("not an image at all")
    code, _, err = run_cli("-c", str(cfg), "process", str(tmp_path / "notes.jpg"), capsys=capsys)
    assert code == 1 and "amberpicd: notes.jpg: not an image (unrecognised content)" in err


def test_error_lines_name_the_file_below_the_folder_given(tmp_path: Path, home, capsys, project):
    cfg = simple_config(tmp_path)
    whole = (project / "p1.jpg").read_bytes()
    (project / "generator" / "broken.jpg").write_bytes(whole[: len(whole) // 2])
    code, _, err = run_cli("-c", str(cfg), "process", str(project), capsys=capsys)
    assert code == 1
    assert "amberpicd: generator/broken.jpg: decode failed: file is truncated" in err.splitlines()


def test_summary_line_counts_sizes_and_time(tmp_path: Path, home, capsys, project):
    cfg = simple_config(tmp_path)
    (project / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, _, err = run_cli("-c", str(cfg), "process", str(project), capsys=capsys)
    assert code == 1
    line = err.splitlines()[-1]
    size_in = sum((project / p).stat().st_size for p in ("p1.jpg", "generator/p2.jpg"))
    size_out = sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    assert size_out < size_in < 100_000
    saved = round(100 * (size_in - size_out) / size_in)
    sizes = f"{size_in / 1000:.1f} KB → {size_out} B (\u2212{saved} %)"
    assert re.fullmatch(rf"2 done, 2 skipped, 1 failed · {re.escape(sizes)} · [\d.]+ s", line), line


def test_no_summary_for_a_script_reading_json(tmp_path: Path, home, capsys, project):
    cfg = simple_config(tmp_path)
    code, out, err = run_cli("-c", str(cfg), "process", "--json", str(project), capsys=capsys)
    assert code == 0 and err == "" and len(out.splitlines()) == 4


def test_dry_run_names_what_the_real_run_writes_when_names_are_taken(tmp_path: Path, home, capsys):
    cfg = simple_config(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p1.webp").write_bytes(b"taken")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    images.jpeg(tmp_path / "a" / "p1.jpg", (640, 480))
    images.jpeg(tmp_path / "b" / "p1.jpg", (320, 240))  # same output name in the same run
    args = (
        "-c",
        str(cfg),
        "process",
        "-j",
        "1",
        "--json",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
    )
    code, out, err = run_cli(*args[:3], "--dry-run", *args[3:], capsys=capsys)
    assert code == 0, err
    planned = sorted(Path(p).name for line in out.splitlines() for p in json.loads(line)["outputs"])
    assert planned == ["p1-1.webp", "p1-2.webp"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p1.webp"]
    code, out, _ = run_cli(*args, capsys=capsys)
    real = sorted(Path(p).name for line in out.splitlines() for p in json.loads(line)["outputs"])
    assert code == 0 and real == planned


def test_dry_run_with_skip_says_it_would_skip(tmp_path: Path, home, capsys):
    cfg = simple_config(tmp_path, on_conflict="skip")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p1.webp").write_bytes(b"taken")
    images.jpeg(tmp_path / "p1.jpg", (640, 480))
    code, out, _ = run_cli(
        "-c", str(cfg), "process", "--dry-run", "--json", str(tmp_path / "p1.jpg"), capsys=capsys
    )
    assert code == 0 and json_lines(out)["p1.jpg"]["status"] == "skipped"


def test_free_name_resolves_conflicts_as_publishing_does(tmp_path: Path):
    from amberpicd.engine.batch import free_name
    from amberpicd.output.writer import publish, stage

    taken = {tmp_path / "a.webp", tmp_path / "a-1.webp"}
    for path in taken:
        path.write_bytes(b"x")
    assert free_name(tmp_path / "a.webp", "rename", Path.exists) == tmp_path / "a-2.webp"
    assert free_name(tmp_path / "a.webp", "overwrite", Path.exists) == tmp_path / "a.webp"
    assert free_name(tmp_path / "a.webp", "skip", Path.exists) is None
    assert free_name(tmp_path / "b.webp", "skip", Path.exists) == tmp_path / "b.webp"
    # The same answer as the writer's own publish, for each policy.
    for policy in ("rename", "overwrite", "skip"):
        expected = free_name(tmp_path / "a.webp", policy, Path.exists)
        assert publish(stage(b"new", tmp_path / "a.webp", policy, f"t{policy}")) == expected


SUBCOMMANDS = [
    "process", "explain", "check", "init", "run", "status", "pause", "resume", "reload", "retry",
    "history", "tray", "install-service", "uninstall-service", "undo",
]  # fmt: skip


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_help_has_a_description_and_an_example(name: str, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    _usage, _, rest = out.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert description.strip() and not description.startswith(("positional", "options")), out
    assert re.search(rf"^example:?\n\s+amberpicd .*{name}", out, re.M | re.I), out


def test_every_subcommand_is_in_the_help_list():
    from amberpicd.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)
