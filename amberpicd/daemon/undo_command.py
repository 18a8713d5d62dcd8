"""The daemon's ``undo`` control command: the undo engine (engine/undo.py) run on the
daemon's own journal, for the tray's "Undo" (the command line runs the engine itself).

Request: ``{"cmd": "undo", "path": P}`` (or ``"paths": [...]``, or ``"last": N``; and
``"dry_run": true``). Reply: ``{"ok", "reports": [UndoReport.as_json()...], "error"}``;
ok when every file was undone or had nothing left to undo.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from amberpicd.config.schema import Config
from amberpicd.daemon.results import Recent
from amberpicd.engine import undo
from amberpicd.errors import JournalError, printable
from amberpicd.journal import Journal

log = logging.getLogger("amberpicd")


def handle_undo(journal: Journal, config: Config, request: dict, recent: Recent) -> dict:
    """Undo what the request names; each undone file is added to ``recent`` (the status's
    Recent activity) as ``undone``."""
    paths = [str(p) for p in request.get("paths") or ()]
    paths += [str(request["path"])] if request.get("path") else []
    dry_run = bool(request.get("dry_run"))
    try:
        if request.get("last"):
            targets = [(j.source, j) for j in journal.last_done(int(request["last"]))]
        else:
            targets = [(Path(p), undo.find(journal, Path(p))) for p in paths]
        reports: list[dict] = []
        for given, job in targets:
            if job is None:
                error = f"{printable(given.name)}: nothing to undo: no job processed it"
                reports.append({"source": str(given), "status": "nothing", "error": error})
                continue
            report = undo.undo_job(journal, config, job, dry_run=dry_run)
            reports.append(report.as_json())
            for line in report.lines():
                (log.info if report.status == "undone" else log.error)("%s", line)
            if report.status == "undone" and not dry_run:
                recent.append(
                    {
                        "source": str(job.source),
                        "status": "undone",
                        "outputs": [],
                        "error": None,
                        "time": time.time(),
                    }
                )
    except (JournalError, ValueError, TypeError) as exc:
        return {"ok": False, "error": f"undo: {exc}"}
    ok = bool(reports) and all(r["status"] in ("undone", "nothing") for r in reports)
    error = None if ok else next((r["error"] for r in reports if r.get("error")), "nothing named")
    return {"ok": ok, "reports": reports, "error": error}
