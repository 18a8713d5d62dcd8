"""Commands that run the rules once, without the daemon: process, explain, check, init.

``process`` and ``explain`` hand files to engine/ (batch, explain) and print with cli/report;
``check`` and ``init`` read or write the config file. Nothing else is touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from amberpicd.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subparsers, add_command
from amberpicd.errors import ConfigError, printable


def _load(args: argparse.Namespace):
    from amberpicd.config.loader import load_config

    return load_config(Path(args.config) if args.config else None)


def _process(args: argparse.Namespace) -> int:
    if args.jobs != 0:
        from amberpicd.workers.pool import start_fork_server

        start_fork_server()  # the workers' imports overlap ours
    from amberpicd.cli import report
    from amberpicd.daemon.lock import daemon_running, lock_path
    from amberpicd.engine import batch

    loaded = _load(args)
    if args.rule and args.rule not in {r.name for r in loaded.config.rules}:
        raise ConfigError(f"no rule named {args.rule!r}", loaded.source)
    # `kill PID` stops the run as Ctrl-C does: the pool closed, the temps of the jobs cut
    # short removed (batch.process), exit 143; by default it ended us on the spot.
    signal.signal(signal.SIGTERM, _terminated)
    missing = [p for p in args.paths if not Path(p).exists() and not Path(p).is_symlink()]
    for p in missing:
        print(f"amberpicd: {printable(p)}: no such file or folder", file=sys.stderr)
    started = time.monotonic()
    given = [Path(p) for p in args.paths if p not in missing]
    total = sum(1 for _ in batch.walk(given))
    progress = report.Progress(total)
    tally = batch.Tally()

    def warn(line: str) -> None:
        progress.clear()
        print(f"amberpicd: {printable(line)}", file=sys.stderr, flush=True)

    journal = batch.open_journal(args.dry_run, warn)
    beside_daemon = daemon_running(lock_path())  # a daemon runs: /proc/locks, never a lock

    def say(line: str) -> None:
        # The reader may go (`process --json | head -1`): the files asked for are still all
        # done and journalled; only what nobody reads any more is dropped.
        try:
            print(line, flush=True)
        except BrokenPipeError:
            _silence_stdout()

    def show(rep) -> None:
        progress.clear()
        # Not an image (README.txt, a Makefile): skipped quietly, listed with --verbose.
        quiet = rep.status == "skipped" and rep.error and not args.verbose
        quiet = quiet or (rep.status == "already" and not args.verbose)  # counted at the end
        if args.json:
            say(report.json_line(rep))
        elif (rep.status == "failed" and args.verbose) or (rep.status != "failed" and not quiet):
            say(report.human_line(rep, args.dry_run, tally.shown.get(rep.source)))
        if rep.status == "failed":
            error = report.located(rep, tally.shown.get(rep.source))
            print(f"amberpicd: {printable(error or '')}", file=sys.stderr, flush=True)
        progress.update(rep)

    try:
        reports = batch.process(
            loaded.config,
            given,
            jobs=args.jobs,
            rule=args.rule,
            dry_run=args.dry_run,
            on_report=show,
            tally=tally,
            journal=journal,
            force=args.force,
            warn=warn,
            beside_daemon=beside_daemon,
        )
    finally:
        if journal is not None:
            journal.close()
    progress.clear()
    # The last line, for people: not when a script reads JSON from a pipe.
    if not (args.json and not sys.stdout.isatty()):
        line = report.summary_line(
            tally.counts, tally.bytes_in, tally.bytes_out, time.monotonic() - started
        )
        print(f"{line} (dry run: nothing written)" if args.dry_run else line, file=sys.stderr)
    failed = sum(r.status == "failed" for r in reports)
    return EXIT_FAILED if failed or missing else EXIT_OK


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _silence_stdout() -> None:
    """Standard output's reader is gone: its file descriptor now writes to /dev/null, so
    neither later lines nor the flush at exit fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _explain(args: argparse.Namespace) -> int:
    from amberpicd.cli.report import json_text
    from amberpicd.engine import batch
    from amberpicd.engine.explain import explain, lines

    loaded = _load(args)
    missing = [p for p in args.paths if not Path(p).exists() and not Path(p).is_symlink()]
    for p in missing:
        print(f"amberpicd: {p}: no such file or folder", file=sys.stderr)
    files = list(batch.walk(Path(p) for p in args.paths if p not in missing))
    for n, item in enumerate(explain(loaded.config, files)):
        if args.json:
            print(json_text(item.as_json()), flush=True)
        else:
            print(("\n" if n else "") + "\n".join(lines(item)), flush=True)
    return EXIT_FAILED if missing else EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from amberpicd.cli.report import describe_config

    loaded = _load(args)
    where = loaded.source or "embedded default config"
    print(f"{where}: valid")
    print(describe_config(loaded.config))
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from amberpicd.config.loader import write_starter
    from amberpicd.paths import config_file

    target = Path(args.config) if args.config else config_file()
    try:
        write_starter(target)
    except ConfigError as exc:
        hint = "; edit it, or name another file with -c PATH" if "exists" in str(exc) else ""
        print(f"amberpicd: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE  # the file exists (or cannot be written): nothing was changed
    check = f"amberpicd check -c {shlex.quote(args.config)}" if args.config else "amberpicd check"
    print(f"wrote {target}; edit it, then run `{check}`")
    return EXIT_OK


def register(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "process",
        "run the rules on files and folders",
        "Run the config's rules once on the files given and on every file in the folders given "
        "(recursively), exactly as the daemon would, then exit. Files that are no images are "
        "skipped; files already done with the same name, content and rules (by an earlier "
        "run or the daemon: both keep the journal) are skipped unless --force; the last line "
        "sums up what was done.",
        "amberpicd process --dry-run ~/Pictures/Holiday\n"
        "  amberpicd process -c web.yaml --json a.jpg b.heic",
        run=_process,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and folders")
    p.add_argument("--dry-run", action="store_true", help="report, write nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per input file per line")
    p.add_argument("--rule", metavar="NAME", help="run only this rule")
    p.add_argument(
        "--force", action="store_true", help="redo files already done (same name, content, rules)"
    )
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="worker processes (default: cores)")

    p = add_command(
        sub,
        "explain",
        "show why each rule does or does not apply to files, and what a run would do",
        "For each file: its facts as the rules see them, every rule of its watch entry with each"
        " condition and whether it holds, the outputs a run would write today (conflicts"
        " resolved as the real run would), and what would happen to the original."
        " Nothing is written.",
        "amberpicd explain ~/Pictures/AmberPic/Inbox/IMG_0042.heic",
        run=_explain,
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    add_command(
        sub,
        "check",
        "validate the config and show what it does",
        "Load the config (from -c, $AMBERPIC_CONFIG, ~/.config/amberpic/config.yaml or the "
        "embedded default), list every mistake with its line, or say what each inbox will do. "
        "Exit 0 when valid, 2 when not.",
        "amberpicd check -c ~/.config/amberpic/config.yaml",
        run=_check,
    )
    add_command(
        sub,
        "init",
        "write a commented starter config",
        "Write a commented starter config to edit (to -c PATH, or "
        "~/.config/amberpic/config.yaml). An existing file is never overwritten.",
        "amberpicd init && amberpicd check",
        run=_init,
    )
