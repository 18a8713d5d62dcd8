"""Commands that run or talk to the daemon: run, status, pause, resume, reload, retry, history.

``run`` starts daemon/service; the control commands go through the control socket only;
``history`` reads the journal read-only.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from amberpicd.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, add_command, setup_logging
from amberpicd.errors import printable


def _run(args: argparse.Namespace) -> int:
    from amberpicd.daemon.service import run_daemon

    setup_logging(args.verbose)
    return run_daemon(Path(args.config) if args.config else None, tray=not args.no_tray)


def _send(cmd: str, args: argparse.Namespace, **extra: object) -> dict:
    from amberpicd.daemon.control import request, socket_path

    return request(socket_path(), cmd, **extra)


def _print_status(status: dict) -> None:
    state = status["state"]
    print(f"amberpicd {status['version']} (pid {status['pid']}): {state}")
    source = status["config"]["source"]
    print(f"  config: {'embedded default' if source == 'embedded' else source}")
    print(f"  queue: {status['queue']} waiting, {status['in_flight']} in progress")
    for inbox in status["inboxes"]:
        flags = [] if inbox["enabled"] else ["disabled"]
        if not inbox["watching"]:
            flags.append("missing")
        # "retry" jobs are failures tried again: their new job is counted, not them too.
        shown = {s: n for s, n in inbox["counts"].items() if s != "retry"}
        counts = ", ".join(f"{n} {s}" for s, n in sorted(shown.items())) or "nothing yet"
        flag_text = f" ({', '.join(flags)})" if flags else ""
        print(f"  inbox {printable(inbox['inbox'])}{flag_text}: {counts}")
    journal = status.get("journal") or {}
    if journal.get("error"):
        print(f"  journal error (files wait in the queue): {printable(journal['error'])}")
    elif journal.get("lost"):
        print(f"  journal: {printable(journal['lost'])}; a new one was started")
    if status["config"]["error"]:
        print(f"  config error (running on the previous config): {status['config']['error']}")
    empty = status.get("empty") or []
    if empty:
        names = ", ".join(printable(Path(p).name) for p in empty[:5])
        names += ", ..." if len(empty) > 5 else ""
        print(
            f"  {len(empty)} empty (0-byte) file{'s' if len(empty) > 1 else ''} waiting for "
            f"content: {names}"
        )
    for r in [r for r in status["recent"] if r["status"] in ("failed", "skipped")][-5:]:
        if r.get("error"):
            print(f"  {r['status']}: {printable(r['error'])}")


def _control(name: str, **extra: object):
    def handler(args: argparse.Namespace) -> int:
        payload = dict(extra)
        if name == "retry" and args.path:
            payload["path"] = str(Path(args.path).absolute())
        response = _send(name, args, **payload)
        if args.json:
            print(json.dumps(response))
        elif name == "status" and response.get("ok"):
            _print_status(response)
        elif response.get("ok"):
            detail = f": {response['queued']} files queued" if name == "retry" else ""
            print(f"{name}: ok{detail}")
        else:
            print(f"amberpicd: {name}: {response.get('error')}", file=sys.stderr)
        return EXIT_OK if response.get("ok") else EXIT_FAILED

    return handler


def _history(args: argparse.Namespace) -> int:
    from amberpicd.errors import JournalError
    from amberpicd.journal import Journal
    from amberpicd.paths import state_dir

    path = state_dir() / "journal.db"
    if not path.exists():
        print("no history yet")
        return EXIT_OK
    try:  # read-only: history never creates, migrates or repairs the daemon's journal
        with Journal(path, read_only=True) as journal:
            jobs = journal.recent(args.n, failed_only=args.failed)
    except JournalError as exc:
        print(f"amberpicd: history: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not jobs and not args.json:
        print("no failed jobs" if args.failed else "no history yet")
    for job in jobs:
        if args.json:
            print(
                json.dumps(
                    {
                        "id": job.id,
                        "source": str(job.source),
                        "state": job.state,
                        "outputs": [str(p) for p in job.outputs],
                        "encodes": [
                            {"output": str(p), **c}
                            for p, c in zip(job.outputs, job.chosen, strict=False)
                        ],
                        "rules": list(job.rules),
                        "error": job.error,
                        "created": job.created,
                        "finished": job.finished,
                    }
                )
            )
            continue
        when = datetime.fromtimestamp(job.finished or job.created).strftime("%Y-%m-%d %H:%M:%S")
        name = printable(job.source.name)
        # An error already starts with the file's name ("notes.jpg: not an image").
        detail = (job.error or "").removeprefix(f"{name}: ") or ", ".join(
            printable(str(p)) + _chosen_text(c)
            for p, c in zip(job.outputs, job.chosen or [{}] * len(job.outputs), strict=False)
        )
        if not detail and job.state == "unmatched":
            detail = "no rule took it (no rule matched, or not an image)"
        if job.state == "undone":  # its outputs are gone (amberpicd undo): not listed as made
            kept = (job.undo or {}).get("kept") or []
            detail = "outputs removed, original put back" + (
                f"; kept {', '.join(printable(str(p)) for p in kept)}" if kept else ""
            )
        print(f"{when} {job.state:9} {name}: {printable(detail)}")
    return EXIT_OK


def _chosen_text(chosen: dict) -> str:
    """`` (q77, SSIMULACRA2 75.9)`` for an output whose quality was chosen by its score
    (``quality: auto``); nothing for a fixed quality."""
    if chosen.get("score") is None:
        return ""
    quality = f"q{chosen['quality']}, " if chosen.get("quality") is not None else ""
    return f" ({quality}SSIMULACRA2 {chosen['score']:.1f})"


def register(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "run",
        "run the daemon: watch the inboxes",
        "Watch every inbox of the config and process each file dropped there, until stopped "
        "(Ctrl+C or SIGTERM). On a desktop it shows a tray icon. `amberpicd install-service` "
        "starts it at login instead.",
        "amberpicd run\n  amberpicd -c ~/shop.yaml run --no-tray",
        run=_run,
    )
    p.add_argument("--no-tray", action="store_true", help="no tray icon, even on a desktop")
    for name, text, description in (
        (
            "status",
            "show what the daemon is doing",
            "Ask the running daemon what it is doing: its config, queue, inboxes and the "
            "last failures.",
        ),
        (
            "pause",
            "stop taking new files (toggles persist)",
            "Stop taking new files; those arriving wait until `amberpicd resume`. The pause "
            "persists across restarts.",
        ),
        ("resume", "take new files again", "Take new files again, those that waited first."),
        (
            "reload",
            "reload the config file",
            "Load the config file again; on a mistake the daemon keeps the running config "
            "and says why.",
        ),
    ):
        p = add_command(sub, name, text, description, f"amberpicd {name}", run=_control(name))
        p.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    p = add_command(
        sub,
        "retry",
        "try failed files again",
        "Queue the files that failed again (all of them, or one), for example after fixing "
        "the config or freeing disk space.",
        "amberpicd retry ~/Pictures/AmberPic/Inbox/IMG_0042.heic",
        run=_control("retry"),
    )
    p.add_argument("path", nargs="?", help="only this file (default: every failed file)")
    p.add_argument("--json", action="store_true")
    p = add_command(
        sub,
        "history",
        "recent jobs from the journal",
        "List the most recent jobs the daemon recorded, newest first: when, the outcome, "
        "the file, and its outputs or error.",
        "amberpicd history --failed -n 50",
        run=_history,
    )
    p.add_argument("--failed", action="store_true", help="only failures")
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per job per line")
