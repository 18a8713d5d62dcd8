"""`amberpicd process`, `check` and `init` end to end, on real files."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import images
import pytest
from clirun import json_lines, run_cli, write_config
from PIL import Image

EXAMPLE = Path(__file__).parent.parent / "config" / "example.yaml"


def assert_clean(path: Path) -> Image.Image:
    """The output decodes, carries no EXIF at all, no XMP and no comment."""
    im = Image.open(path)
    im.load()
    assert not im.getexif(), f"{path.name} carries EXIF"
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment"):
        assert key not in im.info, f"{path.name} carries {key}"
    raw = path.read_bytes()
    # Strings only metadata could carry (exiftool checks every tag in test_privacy.py).
    for needle in (b"TestMake", b"TestModel", b"Test Artist", b"(c) Test Owner"):
        assert needle not in raw, f"{path.name} leaks {needle!r}"
    return im


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "AMBERPIC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory) -> Path:
    """The issue's test set, made once per session (a 12 MP HEIC takes seconds to encode):
    a rotated JPEG with GPS, an iPhone-style HEIC, an RGBA PNG."""
    made = tmp_path_factory.mktemp("photo-set")
    images.jpeg(made / "IMG_0001.jpg", (4000, 3000), orientation=6, gps=True)
    images.heic(made / "IMG_0002.heic", (3024, 4032), gps=True)
    images.png(made / "logo.png", (1200, 900), mode="RGBA")
    return made


@pytest.fixture
def photos(home: Path, photo_set: Path) -> Path:
    """The issue's test set, fresh copies, in the default inbox."""
    inbox = home / "Pictures" / "AmberPic" / "Inbox"
    inbox.mkdir(parents=True)
    for src in photo_set.iterdir():
        shutil.copyfile(src, inbox / src.name)
    return inbox


def test_embedded_default_end_to_end(photos: Path, home: Path, capsys):
    code, out, _ = run_cli("process", "-j", "2", "--json", str(photos), capsys=capsys)
    assert code == 0
    rows = json_lines(out)
    assert {r["status"] for r in rows.values()} == {"done"}
    web = home / "Pictures" / "AmberPic" / "Web"
    jpg = assert_clean(web / "IMG_0001.webp")
    assert (jpg.format, jpg.size) == ("WEBP", (2048, 1536))
    assert images.corner_is_marker(jpg), "pixels are not upright"
    heic = assert_clean(web / "IMG_0002.webp")
    assert heic.size == (1536, 2048)
    png = assert_clean(web / "logo.webp")
    assert png.size == (1200, 900) and png.mode == "RGBA"  # never enlarged; alpha kept
    assert sorted(p.name for p in photos.iterdir()) == ["IMG_0001.jpg", "IMG_0002.heic", "logo.png"]


def test_example_config_end_to_end(photos: Path, home: Path, capsys):
    code, out, _ = run_cli("-c", str(EXAMPLE), "process", "--json", str(photos), capsys=capsys)
    assert code == 0, out
    rows = json_lines(out)
    assert rows["IMG_0001.jpg"]["rules"] == ["web", "thumb"]
    assert rows["logo.png"]["rules"] == ["web", "thumb"]
    base = home / "Pictures" / "AmberPic"
    web = assert_clean(base / "Web" / "IMG_0001.webp")
    assert web.size == (2048, 1536) and images.corner_is_marker(web)
    thumb = assert_clean(base / "Thumbs" / "2024" / "05" / "IMG_0001.jpg")
    assert (thumb.format, thumb.size) == ("JPEG", (320, 320))
    logo = assert_clean(next((base / "Thumbs").rglob("logo.jpg")))
    assert logo.mode == "RGB"
    # The transparent right half became white, not black.
    assert min(logo.getpixel((310, 160))) > 240


def test_dry_run_writes_nothing_and_reports_the_same(photos: Path, home: Path, capsys):
    code, out, _ = run_cli("process", "--dry-run", "--json", str(photos), capsys=capsys)
    assert code == 0
    planned = json_lines(out)
    assert not (home / "Pictures" / "AmberPic" / "Web").exists()
    code, out, _ = run_cli("process", "--json", str(photos), capsys=capsys)
    real = json_lines(out)
    assert {k: v["outputs"] for k, v in planned.items()} == {
        k: v["outputs"] for k, v in real.items()
    }


def bomb_png(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_bad_inputs_fail_one_line_each_and_the_run_goes_on(tmp_path: Path, home, capsys):
    src = tmp_path / "src"
    src.mkdir()
    good = images.jpeg(src / "good.jpg")
    whole = good.read_bytes()
    (src / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.jpg").write_text("not an image at all")
    (src / "vector.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    (src / "layers.psd").write_bytes(b"8BPS\x00\x01" + b"\0" * 64)
    bomb_png(src / "bomb.png", 100_000, 100_000)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    code, out, err = run_cli("process", "--json", str(src), capsys=capsys)
    assert code == 1
    rows = json_lines(out)
    assert rows["good.jpg"]["status"] == "done"
    expected = {
        "truncated.jpg": "truncated.jpg: decode failed: file is truncated",
        "empty.jpg": "empty.jpg: file is empty",
        "notes.jpg": "notes.jpg: not an image (unrecognised content)",
        "vector.eps": "vector.eps: unsupported format eps",
        "layers.psd": "layers.psd: unsupported format psd",
        "bomb.png": "bomb.png: 10000000000 pixels exceeds max_pixels 100000000",
    }
    for name, message in expected.items():
        assert rows[name]["status"] == "failed"
        assert rows[name]["error"].startswith(message), rows[name]["error"]
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("amberpicd:")]) == 6
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # originals untouched


def test_exit_codes_and_unmatched(tmp_path: Path, home, capsys):
    cfg = write_config(
        tmp_path,
        f"""
rules:
  - name: png-only
    match: {{formats: [png]}}
    pipeline: [{{encode: png}}]
    output: {tmp_path}/out/{{stem}}.{{ext}}
""",
    )
    photo = images.jpeg(tmp_path / "a.jpg")
    code, out, _ = run_cli("-c", str(cfg), "process", "--json", str(photo), capsys=capsys)
    assert code == 0 and json_lines(out)["a.jpg"]["status"] == "unmatched"
    code, _, err = run_cli("-c", str(cfg), "process", str(tmp_path / "missing.jpg"), capsys=capsys)
    assert code == 1 and "no such file" in err
    code, _, err = run_cli("-c", str(cfg), "process", "--rule", "nope", str(photo), capsys=capsys)
    assert code == 2 and "no rule named 'nope'" in err
    bad = write_config(
        tmp_path, "rules:\n  - name: x\n    pipeline: [resiz]\n    output: /o/{stem}\n"
    )
    code, _, err = run_cli("-c", str(bad), "process", str(photo), capsys=capsys)
    assert code == 2 and "config.yaml:3:" in err and "unknown operation" in err


def test_rule_option_runs_one_rule(photos: Path, home: Path, capsys):
    code, out, _ = run_cli(
        "-c", str(EXAMPLE), "process", "--rule", "thumb", "--json", str(photos), capsys=capsys
    )
    assert code == 0
    assert {tuple(r["rules"]) for r in json_lines(out).values()} == {("thumb",)}
    assert not (home / "Pictures" / "AmberPic" / "Web").exists()


def originals_config(tmp_path: Path, policy: str, on_conflict: str = "rename") -> Path:
    inbox, archive, out = tmp_path / "inbox", tmp_path / "archive", tmp_path / "out"
    return write_config(
        tmp_path,
        f"""
watch:
  - inbox: {inbox}
    recursive: true
    originals: {policy}
    archive: {archive}
rules:
  - name: web
    pipeline: [auto_orient, {{resize: {{width: 100}}}}, {{encode: webp}}]
    output: {out}/{{relpath}}/{{stem}}.{{ext}}
    on_conflict: {on_conflict}
""",
    )


@pytest.mark.parametrize("policy", ["keep", "move", "trash", "delete"])
def test_originals_policies(tmp_path: Path, home, policy, capsys, trash_home):
    cfg = originals_config(tmp_path, policy)
    (tmp_path / "inbox" / "trip").mkdir(parents=True)
    src = images.jpeg(tmp_path / "inbox" / "trip" / "a.jpg")
    code, out, _ = run_cli(
        "-c", str(cfg), "process", "--json", str(tmp_path / "inbox"), capsys=capsys
    )
    assert code == 0, out
    assert (tmp_path / "out" / "trip" / "a.webp").exists()
    assert src.exists() == (policy == "keep")
    assert (tmp_path / "archive" / "trip" / "a.jpg").exists() == (policy == "move")
    trash = trash_home / "files"
    assert (trash.exists() and any(trash.iterdir())) == (policy == "trash")


def test_failed_file_keeps_its_original_whatever_the_policy(tmp_path: Path, home, capsys):
    cfg = originals_config(tmp_path, "delete")
    (tmp_path / "inbox").mkdir()
    bad = tmp_path / "inbox" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 broken")
    code, _, _ = run_cli("-c", str(cfg), "process", str(bad), capsys=capsys)
    assert code == 1 and bad.read_bytes() == b"\xff\xd8\xff\xe0 broken"


@pytest.mark.parametrize(
    ("on_conflict", "names", "content_changed"),
    [
        ("rename", ["a-1.webp", "a.webp"], False),
        ("overwrite", ["a.webp"], True),
        ("skip", ["a.webp"], False),
    ],
)
def test_conflicts(tmp_path: Path, home, capsys, on_conflict, names, content_changed):
    cfg = originals_config(tmp_path, "keep", on_conflict)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "out").mkdir()
    images.jpeg(tmp_path / "inbox" / "a.jpg")
    (tmp_path / "out" / "a.webp").write_bytes(b"existing")
    code, out, _ = run_cli(
        "-c", str(cfg), "process", "--json", str(tmp_path / "inbox"), capsys=capsys
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    assert ((tmp_path / "out" / "a.webp").read_bytes() != b"existing") == content_changed
    if on_conflict == "skip":
        assert json_lines(out)["a.jpg"]["status"] == "skipped"


def test_walk_skips_hidden_files_and_symlinks_leading_outside(tmp_path: Path, home, capsys):
    cfg = originals_config(tmp_path, "keep")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    images.jpeg(inbox / "a.jpg")
    images.jpeg(inbox / ".hidden.jpg")
    outside = images.jpeg(tmp_path / "outside.jpg")
    (inbox / "link.jpg").symlink_to(outside)
    code, out, _ = run_cli("-c", str(cfg), "process", "--json", str(inbox), capsys=capsys)
    assert code == 0 and set(json_lines(out)) == {"a.jpg"}


def test_check_and_init(tmp_path: Path, home, capsys):
    code, out, _ = run_cli("check", capsys=capsys)
    assert code == 0 and "embedded default config: valid" in out and "inbox " in out
    target = tmp_path / "new" / "config.yaml"
    code, out, _ = run_cli("-c", str(target), "init", capsys=capsys)
    assert code == 0 and target.exists()
    code, out, _ = run_cli("-c", str(target), "check", capsys=capsys)
    assert code == 0 and "rule web" in out and "rule thumb" in out
    code, _, err = run_cli("-c", str(target), "init", capsys=capsys)
    assert code == 2 and "not overwriting" in err  # a usage error (README: exit codes)
    bad = write_config(
        tmp_path, "rules:\n  - name: w\n    pipeline:\n      - resize: {mode: fitt}\n"
    )
    code, _, err = run_cli("-c", str(bad), "check", capsys=capsys)
    assert code == 2 and "config.yaml:4:" in err and "unknown mode 'fitt'" in err


def test_real_subprocess_and_python_dash_m(tmp_path: Path, home):
    photo = images.jpeg(tmp_path / "a.jpg", orientation=8, gps=True)
    cfg = originals_config(tmp_path, "keep")
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(cfg), "process", "--json", str(photo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    out = assert_clean(Path(row["outputs"][0]))
    assert out.size == (100, 75) and images.corner_is_marker(out)


def test_inline_mode_logs_nothing_of_libvips(tmp_path: Path, home):
    """``-j 0`` runs the engine in the CLI's own process, whose log shows INFO: libvips'
    per-resize chatter must not reach it."""
    photo = images.jpeg(tmp_path / "a.jpg", (640, 480))
    cfg = originals_config(tmp_path, "keep")
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(cfg), "process", "-j", "0", str(photo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # Nothing but the run's summary line (added on purpose: issue 14).
    (line,) = proc.stderr.splitlines()
    assert re.fullmatch(
        r"1 done, 0 skipped, 0 failed · \S+ \S+ → \S+ \S+ \(\S+ %\) · [\d.]+ s", line
    )


def test_per_inbox_worker_memory_limit_applies_to_its_jobs(tmp_path: Path, home, capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = write_config(
        tmp_path,
        f"""
watch:
  - inbox: {inbox}
    limits: {{worker_memory: 200MiB}}
rules:
  - name: web
    pipeline: [{{encode: png}}]
    output: {tmp_path}/out/{{stem}}.{{ext}}
""",
    )
    images.png(inbox / "big.png", (6000, 6000), mode="RGB")  # 108 MB decoded, more to encode
    images.png(tmp_path / "outside.png", (6000, 6000), mode="RGB")
    code, out, _ = run_cli(
        "-c",
        str(cfg),
        "process",
        "--json",
        str(inbox),
        str(tmp_path / "outside.png"),
        capsys=capsys,
    )
    rows = json_lines(out)
    assert code == 1
    assert rows["big.png"]["status"] == "failed" and "memory" in rows["big.png"]["error"]
    assert rows["outside.png"]["status"] == "done"  # the global 4 GiB applies outside the inbox
