"""The quality ``quality: auto`` chose and the SSIMULACRA2 score it reached are reported:
``amberpicd process --json``, ``amberpicd history`` (the journal's outputs entries) and
the debug log. Real photos (Pillow's test images), real codecs, the real journal."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import pytest
from clirun import json_lines, run_cli, write_config
from PIL import Image

from amberpicd.imaging.encode import encode_as
from amberpicd.imaging.picture import Picture
from amberpicd.imaging.ssimulacra2 import Reference
from amberpicd.journal import Journal
from amberpicd.ops.encode import Encode


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "AMBERPIC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


def config(tmp_path: Path) -> Path:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    return write_config(
        tmp_path,
        f"""
watch:
  - inbox: {inbox}
rules:
  - name: auto
    pipeline: [{{resize: {{width: 400}}}}, {{encode: {{format: webp, quality: auto, target: 75}}}}]
    output: {out}/auto/{{stem}}.{{ext}}
  - name: fixed
    pipeline: [{{resize: {{width: 400}}}}, {{encode: {{format: jpeg, quality: 70}}}}]
    output: {out}/fixed/{{stem}}.{{ext}}
""",
    )


def test_process_json_and_history_report_quality_and_score(
    tmp_path: Path, home: Path, pillow_images: Path, capsys
):
    cfg = config(tmp_path)
    shutil.copy(pillow_images / "flower.jpg", tmp_path / "inbox" / "flower.jpg")
    code, out, _ = run_cli(
        "-c", str(cfg), "process", "-j", "1", "--json", str(tmp_path / "inbox"), capsys=capsys
    )
    assert code == 0, out
    row = json_lines(out)["flower.jpg"]
    encodes = {Path(e["output"]).parent.name: e for e in row["encodes"]}
    assert [e["output"] for e in row["encodes"]] == row["outputs"]
    auto, fixed = encodes["auto"], encodes["fixed"]
    assert auto["format"] == "webp" and 1 <= auto["quality"] <= 100
    assert auto["score"] >= 75
    # The score reported is the written file's, against the picture before encoding.
    with Image.open(pillow_images / "flower.jpg") as src:
        picture = src.convert("RGB")
        picture = picture.resize((400, round(400 * src.height / src.width)), Image.LANCZOS)
    written = Image.open(io.BytesIO(Path(auto["output"]).read_bytes())).convert("RGB")
    assert Reference(picture).score(written) == pytest.approx(auto["score"], abs=1.0)
    # A fixed quality is reported as such, with no score (nothing was measured).
    assert fixed["quality"] == 70 and "score" not in fixed
    # history, from the journal the run wrote: the same choices, per output.
    code, out, _ = run_cli("history", "--json", capsys=capsys)
    assert code == 0
    job = json.loads(out.splitlines()[0])
    assert job["outputs"] == row["outputs"] and job["encodes"] == row["encodes"]
    code, out, _ = run_cli("history", capsys=capsys)
    assert f"(q{auto['quality']}, SSIMULACRA2 {auto['score']:.1f})" in out
    assert out.count("SSIMULACRA2") == 1  # not for the fixed-quality output


def test_journal_reads_plain_and_extended_output_entries(tmp_path: Path):
    # Entries written before choices were recorded are plain paths; both read back.
    with Journal(tmp_path / "j.db") as journal:
        for chosen in ((), ({"quality": 61, "score": 75.4, "format": "jpeg"}, {})):
            job = journal.begin(tmp_path / "a.jpg", f"hash{len(chosen)}", "fp", rules=["r"])
            journal.stage(job, [])
            journal.published(job, [Path("/o/a.jpg"), Path("/o/b.png")], chosen)
        newer, older = journal.recent(2)
    assert older.outputs == newer.outputs == (Path("/o/a.jpg"), Path("/o/b.png"))
    assert older.chosen == ({}, {})
    assert newer.chosen == ({"quality": 61, "score": 75.4, "format": "jpeg"}, {})


def test_debug_log_says_quality_and_score(pillow_images: Path, caplog):
    with Image.open(pillow_images / "flower.jpg") as src:
        picture = Picture([src.convert("RGB")])
    spec = Encode(format="jpeg", quality="auto", target=75)
    with caplog.at_level(logging.DEBUG, logger="amberpicd"):
        result = encode_as(picture, spec, "jpeg", (), Path("flower.jpg"))
    said = [r.getMessage() for r in caplog.records if "quality auto" in r.getMessage()]
    assert said == [
        f"flower.jpg: jpeg quality auto: q{result.quality}, score {result.score:.2f}"
        f" (target 75), {said[0].rsplit(', ', 1)[1]}"
    ]
