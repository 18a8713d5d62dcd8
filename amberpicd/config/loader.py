"""Find, read and validate config.yaml; write the starter config for ``amberpicd init``.

Which file is used, first match wins:
  1. the path given with ``-c/--config``;
  2. ``$AMBERPIC_CONFIG``;
  3. ``$XDG_CONFIG_HOME/amberpic/config.yaml``, when it exists;
  4. the default embedded in the package (``amberpicd/config/default.yaml``).
A file named by 1 or 2 that does not exist is an error, never a silent fallback.

Relative paths in a config (``inbox``, ``archive``, ``output`` templates, a watermark's
``image`` and ``font``) are relative to the folder of the config file; ``~`` and ``$VARS``
expand. The embedded default uses none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from amberpicd.config.messages import config_error
from amberpicd.config.schema import Config
from amberpicd.config.yamltree import parse
from amberpicd.errors import ConfigError
from amberpicd.paths import config_file

EMBEDDED = "default.yaml (embedded)"

# Options of pipeline steps that name a file, resolved like inbox and output.
PATH_OPTIONS: dict[str, tuple[str, ...]] = {"watermark": ("image", "font")}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (``source`` None: the embedded default)."""

    config: Config
    source: Path | None
    text: str


def load_config(path: Path | None = None, *, env: Mapping[str, str] = os.environ) -> LoadedConfig:
    """Load the config named by ``path``, the environment, or the defaults (see module doc)."""
    if path is not None:
        return _load_file(Path(path).expanduser(), "given with --config")
    named = env.get("AMBERPIC_CONFIG")
    if named:
        return _load_file(Path(named).expanduser(), "named by AMBERPIC_CONFIG")
    default = config_file(env)
    # lexists: a dangling symlink is a mistake to report, not a reason to fall back.
    if os.path.lexists(default):
        return _load_file(default, "the default location")
    text = _resource("default.yaml")
    return LoadedConfig(parse_config(text, EMBEDDED, None), None, text)


def _load_file(path: Path, how: str) -> LoadedConfig:
    path = path.absolute()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} ({how}) does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError("not UTF-8 text", path, line) from None
    return LoadedConfig(parse_config(text, path, path.parent), path, text)


def parse_config(text: str, source: str | Path | None, base_dir: Path | None) -> Config:
    """Validate YAML ``text``; errors are ConfigErrors naming ``source`` and the line.

    Relative paths resolve against ``base_dir``; with None they are left relative.
    """
    doc = parse(text, source)
    if not isinstance(doc.data, dict):
        raise ConfigError(
            "the config must be a mapping of keys (version, limits, watch, rules)",
            source,
            doc.root.start_mark.line + 1,
        )
    try:
        return Config.model_validate(_resolve_paths(_yaml_words(doc.data), base_dir))
    except ValidationError as exc:
        raise config_error(exc, doc, source) from None


def _resolve_paths(data: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Expand ``~``/``$VARS`` and anchor relative paths at ``base_dir``, in place.

    Only values of the expected shape are touched; anything else is left for validation
    to report, so paths into the data (error locations) stay valid.
    """
    for entry in _items(data.get("watch")):
        for key in ("inbox", "archive"):
            _resolve(entry, key, base_dir)
    for rule in _items(data.get("rules")):
        _resolve(rule, "output", base_dir)
        for step in _items(rule.get("pipeline")):
            if len(step) == 1:
                ((name, options),) = step.items()
                for key in PATH_OPTIONS.get(name, ()):
                    if isinstance(options, dict):
                        _resolve(options, key, base_dir)
    return data


def _yaml_words(data: dict[str, Any]) -> dict[str, Any]:
    """Undo YAML 1.1 reading a word as a boolean where the schema wants the word:
    ``notify: off`` is the word "off" (``notify: no`` too), not false."""
    daemon = data.get("daemon")
    if isinstance(daemon, dict) and daemon.get("notify") is False:
        daemon["notify"] = "off"
    return data


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _resolve(mapping: dict[str, Any], key: str, base_dir: Path | None) -> None:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        return
    value = os.path.expandvars(os.path.expanduser(value))
    if base_dir is not None and not os.path.isabs(value):
        value = os.path.join(base_dir, value)
    mapping[key] = value


def _resource(name: str) -> str:
    return resources.files("amberpicd.config").joinpath(name).read_text(encoding="utf-8")


def starter_config_text() -> str:
    """The commented starter config that ``amberpicd init`` writes."""
    return _resource("starter.yaml")


def write_starter(path: Path) -> None:
    """Write the starter config to ``path``, creating folders; never overwrite a file.

    The file appears complete or not at all: written to a temporary name, synced, then
    hard-linked into place (which fails, rather than clobbers, if ``path`` exists).
    """
    path = Path(path)
    if os.path.lexists(path):
        raise ConfigError(f"{path} exists; not overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = starter_config_text().encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _place(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _place(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ConfigError(f"{path} exists; not overwriting") from None
    except OSError as exc:
        # Some filesystems (vfat, some FUSE) have no hard links: check, then rename.
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
            raise
        if os.path.lexists(path):
            raise ConfigError(f"{path} exists; not overwriting") from None
        os.rename(tmp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
