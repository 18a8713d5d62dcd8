import io
from pathlib import Path

from amberpicd.cli.report import Progress, describe_config, human_line, json_line
from amberpicd.config.loader import parse_config
from amberpicd.engine.commit import Report


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only():
    tty = Terminal()
    bar = Progress(4, tty)
    bar.update(Report(Path("a.jpg"), "done"))
    bar.update(Report(Path("b.jpg"), "failed", error="b.jpg: decode failed: x"))
    assert "2/4, 1 failed" in tty.getvalue() and "[###############" in tty.getvalue()
    pipe = io.StringIO()
    quiet = Progress(4, pipe)
    quiet.update(Report(Path("a.jpg"), "done"))
    assert pipe.getvalue() == ""


def test_lines():
    done = Report(Path("/in/a.jpg"), "done", outputs=[Path("/o/a.webp")], rules=["web"])
    assert human_line(done) == "done    a.jpg: wrote /o/a.webp"
    assert human_line(done, dry_run=True) == "done    a.jpg: would write /o/a.webp"
    assert json_line(done) == (
        '{"source": "/in/a.jpg", "status": "done", "outputs": ["/o/a.webp"], '
        '"rules": ["web"], "error": null, "encodes": []}'
    )


def test_describe_config_names_every_inbox_rule_and_step():
    cfg = parse_config(
        """
watch:
  - inbox: /in
    originals: move
    archive: /arch
rules:
  - name: web
    match: {formats: [jpeg]}
    pipeline: [auto_orient, {resize: {width: 100}}, {encode: webp}]
    output: /o/{stem}.{ext}
""",
        "c.yaml",
        None,
    )
    text = describe_config(cfg)
    assert "inbox /in" in text and "originals: move → archive /arch" in text
    assert "rule web: formats=['jpeg']" in text
    assert "auto_orient → resize(width=100) → encode(format=webp)" in text
