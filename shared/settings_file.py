"""The config file both commands read, and where each setting's value comes from.

`$XDG_CONFIG_HOME/gymrec/config.toml` (else `~/.config/gymrec/config.toml`), or the file given
with `--config FILE`, holds the defaults a person sets once:

    data_dir = "~/gym-data"            # both commands
    endpoint = "tcp://127.0.0.1:5557"  # both commands
    codec = "png"                      # gymrec-record from here on
    quality = 90
    scale = 3
    keymap = "keys.toml"               # relative paths are relative to this file
    between_episodes = 3               # seconds, or "space"
    [fps]                              # per platform (else each env's own default)
    atari = 20
    [hub]                              # gymrec-writer
    repo = "my-org/{env}"
    private = true
    license = "cc-by-4.0"

A value comes from, first to last: the command's flag, an environment variable (`data_dir`:
GYMREC_DATA_DIR, `endpoint`: GYMREC_ENDPOINT), this file, the built-in default. Every value in
the file is checked when it is read; a bad one is a UsageError naming the key and the file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.codec import CODEC_NAMES
from shared.errors import UsageError
from shared.version import PLATFORM_PACKAGES

SPACE = "space"  # between_episodes: wait for the Space key instead of a number of seconds
_REPO_TEMPLATE = re.compile(r"^[\w.{}\-]+/[\w.{}\-]+$")
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # a Hub license id: mit, cc-by-4.0


def config_path() -> Path:
    """`$XDG_CONFIG_HOME/gymrec/config.toml`, else `~/.config/gymrec/config.toml`."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "gymrec" / "config.toml"


# -- checks: each takes the file's value (and the file's folder), returns the value to use or
# -- raises ValueError saying what is wrong ---------------------------------------------------


def _path(value: Any, folder: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a path (a string)")
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path


def _existing_file(value: Any, folder: Path) -> Path:
    path = _path(value, folder)
    if not path.is_file():
        raise ValueError(f"no such file {path}")
    return path


def _endpoint(value: Any, folder: Path) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError("must be a ZeroMQ endpoint such as tcp://127.0.0.1:5557")
    return value


def _int_in(lo: int, hi: int) -> Callable[[Any, Path], int]:
    def check(value: Any, folder: Path) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise ValueError(f"must be a whole number from {lo} to {hi}")
        return value
    return check


def _fps(value: Any, folder: Path) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not 1 <= value <= 1000:
        raise ValueError("must be a number of frames per second from 1 to 1000")
    return float(value)


def _codec(value: Any, folder: Path) -> str:
    if value not in CODEC_NAMES:
        raise ValueError(f"must be one of {', '.join(CODEC_NAMES)}")
    return value


def _bool(value: Any, folder: Path) -> bool:
    if type(value) is not bool:
        raise ValueError("must be true or false")
    return value


def _repo_template(value: Any, folder: Path) -> str:
    if not isinstance(value, str) or not _REPO_TEMPLATE.match(value):
        raise ValueError("must be owner/name, with {user} and {env} filled in")
    return value


def _license(value: Any, folder: Path) -> str:
    if not isinstance(value, str) or not _LICENSE_ID.fullmatch(value):
        raise ValueError("must be a Hub license id, lower case (mit, cc-by-4.0, other)")
    return value


def between_episodes(value: Any, folder: Path | None = None) -> float | str:
    """Seconds (a number >= 0, or its text) or "space"; raises ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() == SPACE:
        return SPACE
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("must be a number of seconds or \"space\"") from None
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= 3600:
        raise ValueError("must be a number of seconds (0 to 3600) or \"space\"")
    return float(value)


@dataclass(frozen=True)
class Key:
    """One setting of the file: its dotted name, its check, and the environment variable that
    comes before it."""

    name: str
    check: Callable[[Any, Path], Any]
    env: str | None = None


# gymrec-record reads all but hub.*, gymrec-writer data_dir, endpoint and hub.*; both check
# the whole file.
KEYS: Mapping[str, Key] = {k.name: k for k in (
    Key("data_dir", _path, env="GYMREC_DATA_DIR"),
    Key("endpoint", _endpoint, env="GYMREC_ENDPOINT"),
    Key("codec", _codec),
    Key("quality", _int_in(1, 100)),
    Key("scale", _int_in(1, 8)),
    Key("keymap", _existing_file),
    Key("between_episodes", between_episodes),
    *(Key(f"fps.{platform}", _fps) for platform in PLATFORM_PACKAGES),
    Key("hub.repo", _repo_template),
    Key("hub.private", _bool),
    Key("hub.license", _license),
)}


@dataclass(frozen=True)
class Chosen:
    """A setting's value and where it came from ("flag --fps", "env GYMREC_ENDPOINT",
    "config /path/config.toml", "default")."""

    value: Any
    source: str


@dataclass(frozen=True)
class SettingsFile:
    """The checked values of a config file (dotted key → value); `found` False: no file."""

    path: Path
    found: bool
    values: Mapping[str, Any] = field(default_factory=dict)

    def choose(self, key: str, flag: Any, flag_name: str, default: Any,
               default_source: str = "default") -> Chosen:
        """The value of `key`: the flag's (unless None), else the key's environment variable,
        else this file's, else `default`."""
        if flag is not None:
            return Chosen(flag, f"flag {flag_name}")
        env = KEYS[key].env
        if env and (text := os.environ.get(env)):
            return Chosen(Path(text).expanduser() if key == "data_dir" else text, f"env {env}")
        if key in self.values:
            return Chosen(self.values[key], f"config {self.path}")
        return Chosen(default, default_source)


def load_settings_file(explicit: Path | None = None) -> SettingsFile:
    """Read and check the config file: `explicit` (which must exist), else the default one
    (which may be missing). Raises UsageError naming the key and the file."""
    path = Path(explicit).expanduser() if explicit is not None else config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit is not None:
            raise UsageError(f"config {path}: no such file") from None
        return SettingsFile(path, found=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"config {path}: cannot be read ({_reason(exc)})") from exc
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path}: not valid TOML ({exc})") from exc
    return SettingsFile(path, found=True, values=check_values(tables, path))


def check_values(tables: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The dotted keys of parsed TOML `tables`, each checked (pure: no file is read, apart from
    the existence of a key map file). Raises UsageError naming the first bad key."""
    values = {}
    for name, value in _flatten(tables):
        key = KEYS.get(name)
        if key is None:
            known = ", ".join(KEYS)
            raise UsageError(f"config {path}: unknown key {name!r} (known: {known})")
        try:
            values[name] = key.check(value, path.parent)
        except ValueError as exc:
            raise UsageError(f"config {path}: {name} = {_short(value)}: {exc}") from None
    return values


def _flatten(tables: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """("fps.<platform>", 20) for {"fps": {<platform>: 20}}; a table only where the file has
    one."""
    items = []
    for name, value in tables.items():
        dotted = prefix + name
        if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in KEYS):
            items.extend(_flatten(value, dotted + "."))
        else:
            items.append((dotted, value))
    return items


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= limit else text[:limit] + "..."


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def show_lines(chosen: Mapping[str, Chosen], file: SettingsFile) -> list[str]:
    """`--show-config`: the file read, then one line per setting with its value and source."""
    state = "read" if file.found else "not found, built-in defaults apply"
    width = max((len(f"{k} = {_shown(c.value)}") for k, c in chosen.items()), default=0)
    lines = [f"config file: {file.path} ({state})"]
    for key, c in chosen.items():
        lines.append(f"{f'{key} = {_shown(c.value)}':<{width}}   # {c.source}")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)
