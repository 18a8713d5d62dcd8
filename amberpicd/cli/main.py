"""The ``amberpicd`` command line: composes the command groups and runs the one named.

Each group is a module with ``register(subparsers)`` (cli/process, cli/daemon, cli/desktop,
cli/undo);
adding a group is one line in ``GROUPS``. Exit codes: 0 success, 1 some file failed (or the
command could not do its job), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence

from amberpicd import __version__
from amberpicd.cli import daemon, desktop, process, undo
from amberpicd.cli.common import EXIT_FAILED, EXIT_USAGE, Subparsers, common_options
from amberpicd.errors import AmberpicError, ConfigError, OneLineFormatter

# The command groups, in the order `amberpicd --help` lists them.
GROUPS: tuple[Callable[[Subparsers], None], ...] = (
    process.register,  # process, explain, check, init
    daemon.register,  # run, status, pause, resume, reload, retry, history
    desktop.register,  # tray, install-service, uninstall-service
    undo.register,  # undo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amberpicd",
        description="Private, local image processing: rules and pipelines on your own machine.",
        parents=[common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"amberpicd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        return args.run(args)
    except ConfigError as exc:
        for error in getattr(exc, "errors", (exc,)):  # ConfigErrors: every mistake found
            print(f"amberpicd: {error}", file=sys.stderr)
        return EXIT_USAGE
    except AmberpicError as exc:
        if args.verbose:
            raise
        print(f"amberpicd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def entry(argv: Sequence[str] | None = None) -> None:
    """The program's entry point (``amberpicd`` and ``python -m amberpicd``): ``main``, then
    the exit handlers (logging's flush, multiprocessing's joins, temporary folders), then
    out, without tearing the interpreter down module by module: everything the command
    promised is durable by the time ``main`` returns (outputs and journal fsynced, the
    journal closed), and the teardown of the engine's modules and objects was the largest
    part of ``process``'s last tenth of a second. With a non-daemon thread still alive the
    interpreter exits as usual (it joins them first)."""
    code = main(argv)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        raise SystemExit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: as the interpreter would say it
        os._exit(120)
    os._exit(code)
