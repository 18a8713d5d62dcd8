"""Every ``keep_metadata`` group through every output format, read back by exiftool.

The source (tests/metasource.py) carries every tag the policy has an opinion about,
written by exiftool, plus a maker note, Adobe's private DNG tags, an EXIF thumbnail
and an MPF preview. For each group and format, the metadata exiftool finds in the
output must be exactly the source's tags that the group keeps (metasource.ROWS says
which, independently of amberpicd's table): nothing less, nothing more. A control run
feeds the same checks the source itself, and they must find every leak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import metasource
import pytest
from exifcheck import FORBIDDEN_NAMES, TIFF_STRUCTURE

FORMATS = ("jpeg", "png", "webp", "avif", "tiff", "gif")
SINGLE = ("icc", "copyright", "datetime", "camera", "gps", "exif", "xmp")
POLICIES = {
    "none": (),
    **{name: (name,) for name in SINGLE},
    "all-but-gps": ("exif", "xmp", "copyright", "datetime", "camera"),
    "everything": SINGLE,
}
# exiftool families that describe the file, not its content.
STRUCTURE = {"ExifTool", "File", "Composite", "JFIF", "PNG", "RIFF", "QuickTime", "GIF"}


def metadata(tags: list[tuple[str, str]], fmt: str) -> Counter:
    """The metadata among exiftool's tags, as (``family1:Name``, value) counts."""
    found: Counter = Counter()
    for key, value in tags:
        parts = key.split(":")
        if len(parts) == 2:  # "File:Comment": family 0 and 1 are the same
            parts.insert(1, parts[0])
        family0, name, short = parts[0], parts[-1], ":".join(parts[-2:])
        if parts[1] == "System" or family0 == "ICC_Profile":
            continue  # the output file's own dates and permissions; the profile: below
        if key == "File:Comment":
            found[(short, value)] += 1
            continue
        structural = family0 in STRUCTURE or (
            fmt == "tiff" and parts[1] == "IFD0" and name in TIFF_STRUCTURE
        )
        if structural and not any(word in name for word in FORBIDDEN_NAMES):
            continue
        if family0 == "Composite":
            continue  # derived from the tags checked here (GPSPosition from GPS:...)
        found[(short, value)] += 1
    return found


def expected(source: list[tuple[str, str]], groups: tuple[str, ...], fmt: str) -> Counter:
    """The source's tags that ``groups`` keep, per metasource.ROWS (for GIF only the XMP
    ones: GIF has no EXIF, and its pixels are converted to sRGB instead of carrying ICC)."""
    keep = {(row.key, row.value) for row in metasource.ROWS if row.keep & set(groups)}
    if fmt == "gif":
        keep = {(key, value) for key, value in keep if key.startswith("XMP-")}
    have = metadata(source, "jpeg")
    return Counter({kv: n for kv, n in have.items() if _row_of(kv) in keep})


def _row_of(kv: tuple[str, str]) -> tuple[str, str] | None:
    """The ROWS entry (key, value) a source tag comes from; None if it is not a row.
    Keys two rows share (0xa430 and Adobe's 0xfde8 are both OwnerName) go by value."""
    key, value = kv
    rows = [row for row in metasource.ROWS if row.key == key]
    if len(rows) > 1:
        rows = [row for row in rows if row.value == value]
    return (rows[0].key, rows[0].value) if rows else None


def _family1(key: str) -> str:
    parts = key.split(":")
    return parts[1] if len(parts) > 2 else parts[0]


def write_config(base: Path) -> Path:
    rules = []
    for label, groups in POLICIES.items():
        for fmt in FORMATS:
            rules.append(
                f"""
  - name: {label}--{fmt}
    pipeline: [{{resize: {{width: 320}}}}, {{encode: {fmt}}}]
    keep_metadata: {json.dumps(list(groups))}
    output: {base}/out/{{rule}}/{{stem}}.{{ext}}"""
            )
    config = base / "config.yaml"
    config.write_text("version: 1\nrules:" + "".join(rules) + "\n")
    return config


# Sources by format; the JPEG (an MPO) carries every row, the others what they can hold.
SOURCES = {"jpeg": "camera.jpg", "tiff": "camera-tiff.tiff", "png": "camera-png.png"}
NOT_IN = {"jpeg": set(), "tiff": {"File:Comment"}, "png": {"File:Comment"}}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("groups")
    inbox, kept = base / "in", base / "sources"
    inbox.mkdir()
    kept.mkdir()
    sources = {}
    for kind, name in SOURCES.items():
        source = metasource.make_source(inbox / name)
        sources[kind] = kept / name  # a copy: the inbox original may be moved
        sources[kind].write_bytes(source.read_bytes())
    config = write_config(base)
    proc = subprocess.run(
        [sys.executable, "-m", "amberpicd", "-c", str(config), "process", "--json", str(inbox)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == len(SOURCES) and {r["status"] for r in rows} == {"done"}, proc.stderr
    outputs = {(Path(p).parent.name, Path(p).stem): Path(p) for r in rows for p in r["outputs"]}
    assert len(outputs) == len(SOURCES) * len(POLICIES) * len(FORMATS)
    tags = metasource.read_tags(*sources.values(), *outputs.values())
    return {"sources": sources, "outputs": outputs, "tags": tags}


def check(tags, raw: bytes, source_tags, groups: tuple[str, ...], fmt: str) -> list[str]:
    """Every way an output breaks the policy: tags missing, extra, in the raw bytes."""
    problems = []
    got, want = metadata(tags, fmt), expected(source_tags, groups, fmt)
    problems += [f"extra {k}={v}" for (k, v) in got - want]
    problems += [f"missing {k}={v}" for (k, v) in want - got]
    keys = {key for key, _ in tags}
    problems += [f"never: {k}" for k in keys if _family1(k) in metasource.NEVER_GROUPS]
    problems += [f"never: {k}" for k in keys if k.endswith(metasource.MAKER_SERIAL)]
    kept = {
        row.secret
        for row in metasource.ROWS
        if row.keep & set(groups) and (fmt != "gif" or row.key.startswith("XMP-"))
    }
    for row in metasource.ROWS:
        if row.secret and row.secret not in kept and row.secret in raw:
            problems.append(f"raw bytes hold {row.secret.decode()}")
    if b"S-MakerNote" in raw:
        problems.append("raw bytes hold the maker note")
    icc = any(key.startswith("ICC_Profile:") for key in keys)
    if icc != ("icc" in groups and fmt != "gif"):
        problems.append(f"ICC profile {'present' if icc else 'missing'}")
    return problems


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("label", POLICIES)
@pytest.mark.parametrize("kind", SOURCES)
def test_every_group_keeps_exactly_its_tags(run, kind: str, label: str, fmt: str) -> None:
    source = run["sources"][kind]
    path = run["outputs"][(f"{label}--{fmt}", source.stem)]
    tags = run["tags"][path]
    warnings = [v for k, v in tags if k == "ExifTool:Warning"]
    assert not warnings, warnings  # e.g. "XMP character encoding error"
    assert check(tags, path.read_bytes(), run["tags"][source], POLICIES[label], fmt) == []


@pytest.mark.parametrize("kind", SOURCES)
def test_the_checks_find_every_leak_in_the_source(run, kind: str) -> None:
    """Control: the source itself, judged as an output that keeps nothing, must fail
    every check (each never-tag, each raw secret, each never-block)."""
    path = run["sources"][kind]
    source = run["tags"][path]
    problems = check(source, path.read_bytes(), source, (), "jpeg")
    text = "\n".join(problems)
    for row in metasource.ROWS:
        if row.key not in NOT_IN[kind]:
            assert f"extra {row.key}=" in text, row.key
            compressed = kind == "png" and row.key.startswith("IPTC:")  # a zTXt chunk
            if row.secret and not compressed:
                assert f"raw bytes hold {row.secret.decode()}" in text
    never = ("IFD1", "MPF0", "MPImage2", "IPTC") if kind == "jpeg" else ("IPTC",)
    for group in never:
        assert f"never: {group}:" in text or f":{group}:" in text, group
    assert metasource.MAKER_SERIAL in text
    if kind == "jpeg":  # exiftool rewrites the others' maker notes without the private tail
        assert "raw bytes hold the maker note" in text
    # and a kept tag that went missing is seen too
    assert any(p.startswith("missing") for p in check([], b"", source, ("gps",), "jpeg"))


@pytest.mark.parametrize("kind", SOURCES)
def test_the_source_carries_every_row(run, kind: str) -> None:
    have = {_row_of(kv) for kv in metadata(run["tags"][run["sources"][kind]], "jpeg")}
    missing = {row.key for row in metasource.ROWS if (row.key, row.value) not in have}
    assert missing == NOT_IN[kind]
