"""What every command group shares: exit codes, ``add_command`` (a sub-command with the common
options, a description and an example) and the daemon-style log setup.

A command group is a module with ``register(subparsers)``: it adds its sub-commands with
``add_command(..., run=handler)``, and ``cli/main.py`` calls the handler the user named.
Touches nothing but argparse and logging.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from amberpicd.errors import OneLineFormatter

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Command = Callable[[argparse.Namespace], int]
Subparsers = argparse._SubParsersAction


def common_options(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.

    Sub-commands get them with SUPPRESS as default, so "-c X process" is not reset by the
    sub-command's own (absent) -c.
    """
    p = argparse.ArgumentParser(add_help=False)
    default = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("-c", "--config", metavar="PATH", help="config file", **default)
    p.add_argument("-v", "--verbose", action="store_true", help="debug output", **default)
    return p


def add_command(
    sub: Subparsers,
    name: str,
    summary: str,
    description: str,
    example: str,
    *,
    run: Command,
) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` says what it does and shows an example; ``run`` handles it."""
    parser = sub.add_parser(
        name,
        parents=[common_options(defaults=False)],
        help=summary,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=_Formatter,
    )
    parser.set_defaults(run=run)
    return parser


class _Formatter(argparse.HelpFormatter):
    """Wraps the description, keeps the example's lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def setup_logging(verbose: bool) -> None:
    """Logging for long-running commands (the daemon, the tray): timestamped lines."""
    # journald stamps each line itself; elsewhere we do.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(f"{stamp}%(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("watchdog").setLevel(logging.INFO)  # its debug lines are per event
