"""Where amberpicd keeps its files, following the XDG base directory spec.

Each function reads the XDG variable at call time from ``env`` (the process environment
by default), so tests and ``load_config(env=...)`` can point them elsewhere. As the spec
says, an unset, empty or relative XDG variable is ignored and the default is used.
platformdirs is not used: it reads ``os.environ`` only, and amberpicd is Linux-only anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP = "amberpic"


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _xdg(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "")
    if value and os.path.isabs(value):
        return Path(value)
    return None


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/amberpic`` (default ``~/.config/amberpic``)."""
    return (_xdg(env, "XDG_CONFIG_HOME") or _home(env) / ".config") / APP


def config_file(env: Mapping[str, str] = os.environ) -> Path:
    """The config file used when neither ``--config`` nor ``AMBERPIC_CONFIG`` names one."""
    return config_dir(env) / "config.yaml"


def trash_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The home trash, ``$XDG_DATA_HOME/Trash`` (default ``~/.local/share/Trash``), as the
    freedesktop trash specification places it."""
    return (_xdg(env, "XDG_DATA_HOME") or _home(env) / ".local" / "share") / "Trash"


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/amberpic`` (default ``~/.local/state/amberpic``): the journal."""
    return (_xdg(env, "XDG_STATE_HOME") or _home(env) / ".local" / "state") / APP


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_RUNTIME_DIR/amberpic`` (the control socket); the state dir when unset."""
    runtime = _xdg(env, "XDG_RUNTIME_DIR")
    return runtime / APP if runtime else state_dir(env)
