"""Key maps: which key drives which control, per platform. Pure: no window, no env.

A key map binds pygame key names ("up", "left ctrl", "z") to the controls of a platform, the
names its module in recorder/envs/ declares with its default keys:

- Atari: UP, DOWN, LEFT, RIGHT, FIRE (combined into the game's own actions);
- Stable-Retro: console button names (B, A, MODE, START, C, X, Y, Z, SELECT, L, R, ...);
- VizDoom: engine button names (ATTACK, USE, MOVE_FORWARD, TURN_LEFT, STRAFE, SPEED, ...).

A TOML file (`--keymap`) changes the defaults, one table per platform; "none" removes a binding:

    [atari]
    "left ctrl" = "FIRE"
    space = "none"
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from recorder.envs import platform_named, platform_names
from shared.errors import UsageError

# Keys the recorder itself uses, whatever the platform (space also starts a recording).
RESERVED = {"escape": "quit", "p": "pause", "h": "HUD", "backspace": "discard",
            "=": "faster", "+": "faster", "keypad +": "faster", "-": "slower",
            "keypad -": "slower"}


class _Controls(Mapping):
    """Platform name → its control names, a read-only view of the registered platforms."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name not in platform_names():
            raise KeyError(name)
        return platform_named(name).controls

    def __iter__(self):
        return iter(platform_names())

    def __len__(self) -> int:
        return len(platform_names())


CONTROLS: Mapping[str, tuple[str, ...]] = _Controls()

# Names that stand for several keys, or that pygame spells differently.
_KEY_ALIASES = {
    "ctrl": ("left ctrl", "right ctrl"), "shift": ("left shift", "right shift"),
    "alt": ("left alt", "right alt"), "enter": ("return", "enter"), "esc": ("escape",),
}


@dataclass(frozen=True)
class Keymap:
    """Key codes (pygame) → control names, for one platform."""

    platform: str
    bindings: Mapping[int, str]
    names: Mapping[int, str]  # key code → the name it was bound by, for help texts

    def controls(self, keys: Iterable[int]) -> frozenset[str]:
        """The controls the held `keys` stand for (keys bound to nothing are ignored)."""
        return frozenset(self.bindings[k] for k in keys if k in self.bindings)

    def by_name(self) -> dict[str, str]:
        """Key name → control, as stored with a session ("left ctrl" → "FIRE")."""
        return {self.names[code]: control for code, control in sorted(self.bindings.items())}

    def keys_for(self, control: str) -> list[str]:
        return sorted({self.names[k] for k, c in self.bindings.items() if c == control})


def key_codes(name: str) -> tuple[int, ...]:
    """The pygame key codes of a key name ("up", "left ctrl", "ctrl", "a"); () if unknown."""
    import pygame

    name = name.strip().lower()
    names = _KEY_ALIASES.get(name, (name,))
    codes = []
    with warnings.catch_warnings():  # key_code works without pygame.init() for these names
        warnings.simplefilter("ignore")
        for n in names:
            try:
                codes.append(pygame.key.key_code(n))
            except ValueError:
                if n != "enter":  # "enter" is the keypad key on some SDL builds only
                    return ()
    return tuple(codes)


def _reserved_codes() -> dict[int, str]:
    """Key code → what the recorder uses it for (by code: "[+]" is "keypad +")."""
    return {code: what for name, what in RESERVED.items() for code in key_codes(name)}


def default_keymap(platform: str) -> Keymap:
    return _build(platform, platform_named(platform).default_keys, "default keymap")


def load_keymap(path: Path | None, platform: str) -> Keymap:
    """The default key map of `platform` changed by the file at `path` (if any).

    Every table of the file is checked, not only `platform`'s, so a mistake shows up the first
    time the file is used. Raises UsageError naming the bad table, key or control.
    """
    if path is None:
        return default_keymap(platform)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read keymap {path}: {exc.strerror}") from exc
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"keymap {path}: not valid TOML ({exc})") from exc
    chosen = default_keymap(platform)
    for section, table in tables.items():
        if section not in platform_names():
            raise UsageError(f"keymap {path}: unknown table [{section}] "
                             f"(use {', '.join(platform_names())})")
        if not isinstance(table, dict):
            raise UsageError(f"keymap {path}: {section} must be a table ([{section}])")
        merged = {**platform_named(section).default_keys, **table}
        keymap = _build(section, merged, f"keymap {path} [{section}]")
        if section == platform:
            chosen = keymap
    return chosen


def _build(platform: str, bindings: Mapping[str, object], where: str) -> Keymap:
    codes: dict[int, str] = {}
    names: dict[int, str] = {}
    removed: set[int] = set()
    vocabulary = platform_named(platform).controls
    for key, control in bindings.items():
        if not isinstance(control, str):
            raise UsageError(f"{where}: the control of key {key!r} must be a string")
        found = key_codes(key)
        if not found:
            raise UsageError(f"{where}: unknown key name {key!r}")
        reserved = _reserved_codes()
        if taken := [reserved[code] for code in found if code in reserved]:
            raise UsageError(f"{where}: key {key!r} is reserved ({taken[0]})")
        control = control.strip().upper()
        if control == "NONE":
            removed.update(found)
            continue
        if control not in vocabulary:
            raise UsageError(f"{where}: unknown {platform} control {control!r} for key {key!r}"
                             f" (one of {', '.join(vocabulary[:12])}, ...)")
        for code in found:
            codes[code] = control
            names[code] = key.lower()
    for code in removed:
        codes.pop(code, None)
        names.pop(code, None)
    return Keymap(platform, MappingProxyType(codes), MappingProxyType(names))
