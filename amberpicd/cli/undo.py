"""``amberpicd undo PATH...`` and ``undo --last N``: take back what processing did.

Runs the undo engine (engine/undo.py) on the daemon's journal directly, so it works with
the daemon running or not (the journal is SQLite; the daemon sees the undone decision).
Exit codes as the other commands: 0 every file undone (or nothing left to undo), 1 some
file could not be undone (refused, failed, never processed), 2 usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amberpicd.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subparsers, add_command
from amberpicd.errors import JournalError, printable

SUMMARY = "take back what processing did to files"
DESCRIPTION = (
    "Remove the outputs made from each file (only those still holding the bytes written:"
    " one changed since is kept and named) and put the original back at its inbox path,"
    " from the archive or the trash. An original deleted (originals: delete) cannot come"
    " back: refused. An undone file is not taken again by the daemon unless it changes or"
    " `amberpicd retry PATH` is run on it. PATH is the original's inbox path or one of its"
    " outputs; --last N undoes the N most recent jobs."
)
EXAMPLE = (
    "amberpicd undo ~/Pictures/AmberPic/Inbox/IMG_0042.heic\n  amberpicd undo --last 3 --dry-run"
)


def register(sub: Subparsers) -> None:
    """Add the ``undo`` sub-command (handled by :func:`run`)."""
    p = add_command(sub, "undo", SUMMARY, DESCRIPTION, EXAMPLE, run=run)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files processed (or their outputs)")
    p.add_argument("--last", type=int, metavar="N", help="the N most recent jobs")
    p.add_argument("--dry-run", action="store_true", help="say what would be undone, do nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")


def run(args: argparse.Namespace) -> int:
    from amberpicd.cli.report import json_text
    from amberpicd.config.loader import load_config
    from amberpicd.engine import undo
    from amberpicd.journal import Journal
    from amberpicd.paths import state_dir

    if bool(args.paths) == (args.last is not None) or (args.last is not None and args.last < 1):
        print("amberpicd: undo: give files, or --last N (N at least 1)", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(Path(args.config) if args.config else None).config
    path = state_dir() / "journal.db"
    if not path.is_file():
        print("amberpicd: undo: nothing to undo: no journal yet", file=sys.stderr)
        return EXIT_FAILED
    try:
        journal = Journal(path, read_only=args.dry_run, repair=False)
    except JournalError as exc:
        print(f"amberpicd: undo: journal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    failed = 0
    with journal:
        if args.last is not None:
            targets = [(job.source, job) for job in journal.last_done(args.last)]
            if not targets:
                print("amberpicd: undo: nothing to undo: no job done yet", file=sys.stderr)
                return EXIT_FAILED
        else:
            targets = [(Path(p), undo.find(journal, Path(p))) for p in args.paths]
        for given, job in targets:
            if job is None:
                failed += 1
                line = f"{printable(given.name)}: nothing to undo: no job processed it"
                print(f"amberpicd: {line}", file=sys.stderr)
                continue
            try:
                report = undo.undo_job(journal, config, job, dry_run=args.dry_run)
            except JournalError as exc:
                failed += 1
                print(f"amberpicd: {printable(given.name)}: undo: journal: {exc}", file=sys.stderr)
                continue
            failed += report.status in ("refused", "failed")
            if args.json:
                print(json_text(report.as_json()), flush=True)
            stream = sys.stderr if report.status in ("refused", "failed") else sys.stdout
            if not args.json or stream is sys.stderr:
                for line in report.lines():
                    prefix = "amberpicd: " if stream is sys.stderr else ""
                    print(f"{prefix}{line}", file=stream, flush=True)
    return EXIT_FAILED if failed else EXIT_OK
