"""Running the ``amberpicd`` command line in-process, for the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

from amberpicd.cli.main import main


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``amberpicd ARGS``."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> dict[str, dict]:
    """``--json`` output by source file name."""
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {Path(r["source"]).name: r for r in rows}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path
