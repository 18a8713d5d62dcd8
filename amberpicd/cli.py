"""The ``amberpicd`` command line: parses arguments and hands each command to its module.

Exit codes: 0 success, 1 some file failed (or the command could not do its job),
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from amberpicd import __version__
from amberpicd.errors import AmberpicError, ConfigError, OneLineFormatter, printable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("amberpicd")

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def _load(args: argparse.Namespace):
    from amberpicd.config.loader import load_config

    return load_config(Path(args.config) if args.config else None)


@command("process")
def _process(args: argparse.Namespace) -> int:
    if args.jobs != 0:
        from amberpicd.workers import start_fork_server

        start_fork_server()  # the workers' imports overlap ours
    from amberpicd import batch, report

    loaded = _load(args)
    if args.rule and args.rule not in {r.name for r in loaded.config.rules}:
        raise ConfigError(f"no rule named {args.rule!r}", loaded.source)
    missing = [p for p in args.paths if not Path(p).exists() and not Path(p).is_symlink()]
    for p in missing:
        print(f"amberpicd: {printable(p)}: no such file or folder", file=sys.stderr)
    files = list(batch.walk(Path(p) for p in args.paths if p not in missing))
    progress = report.Progress(len(files))

    def show(rep) -> None:
        progress.clear()
        if args.json:
            print(report.json_line(rep), flush=True)
        elif rep.status != "failed" or args.verbose:
            print(report.human_line(rep, args.dry_run), flush=True)
        if rep.status == "failed":
            print(f"amberpicd: {printable(rep.error or '')}", file=sys.stderr, flush=True)
        progress.update(rep)

    reports = batch.process(
        loaded.config, files, jobs=args.jobs, rule=args.rule, dry_run=args.dry_run, on_report=show
    )
    progress.clear()
    failed = sum(r.status == "failed" for r in reports)
    return EXIT_FAILED if failed or missing else EXIT_OK


@command("check")
def _check(args: argparse.Namespace) -> int:
    from amberpicd.report import describe_config

    loaded = _load(args)
    where = loaded.source or "embedded default config"
    print(f"{where}: valid")
    print(describe_config(loaded.config))
    return EXIT_OK


@command("init")
def _init(args: argparse.Namespace) -> int:
    from amberpicd.config.loader import write_starter
    from amberpicd.paths import config_file

    target = Path(args.config) if args.config else config_file()
    try:
        write_starter(target)
    except ConfigError as exc:
        print(f"amberpicd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {target}; edit it, then run `amberpicd check`")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    def options(defaults: bool) -> argparse.ArgumentParser:
        # Sub-commands take the same options; SUPPRESS keeps "-c X process" from being reset.
        p = argparse.ArgumentParser(add_help=False)
        default = {} if defaults else {"default": argparse.SUPPRESS}
        p.add_argument("-c", "--config", metavar="PATH", help="config file", **default)
        p.add_argument("-v", "--verbose", action="store_true", help="debug output", **default)
        return p

    common = options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="amberpicd",
        description="Private, local image processing: rules and pipelines on your own machine.",
        parents=[options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"amberpicd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("process", parents=[common], help="run the rules on files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true", help="report, write nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per input file per line")
    p.add_argument("--rule", metavar="NAME", help="run only this rule")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="worker processes (default: cores)")

    sub.add_parser("check", parents=[common], help="validate the config and show what it does")
    sub.add_parser("init", parents=[common], help="write a commented starter config")
    # Register the daemon's commands and the desktop ones (tray, install-service).
    from amberpicd import cli_daemon, cli_desktop  # noqa: F401

    for extra in EXTRA_PARSERS:
        extra(sub, common)
    return parser


# Later commands (daemon, tray, service) add their sub-parsers here.
EXTRA_PARSERS: list[Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"amberpicd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AmberpicError as exc:
        if args.verbose:
            raise
        print(f"amberpicd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
