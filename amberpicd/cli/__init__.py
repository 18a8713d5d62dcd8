"""The ``amberpicd`` command line: ``main`` composes the command groups, each a module with
``register(subparsers)`` (``process``: process, explain, check, init; ``daemon``: run and the
control commands; ``desktop``: tray and the login service); ``common`` holds what they share
(exit codes, ``add_command``); ``report`` formats results for people and scripts.
"""
