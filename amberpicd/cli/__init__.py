"""The ``amberpicd`` command line: ``main`` parses arguments and composes the command groups
(``main`` itself: process, explain, check, init; ``daemon``: run and the control commands;
``desktop``: tray and the login service); ``report`` formats results for people and scripts.
"""

from amberpicd.cli.main import main

__all__ = ["main"]
