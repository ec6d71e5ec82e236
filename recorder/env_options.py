"""`--env-option KEY=VALUE`: keyword arguments for making the env, as the user typed them.

A value is read as JSON (`1`, `0.0`, `true`, `[1, 2]`, `"text"`), else as a TOML value
(`'text'`, `1_000`), else kept as the plain string (`state=Level1`).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from typing import Any

from shared.errors import UsageError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_value(text: str) -> Any:
    """The value `text` stands for (see the module's docstring)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_env_options(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`["frameskip=1", "full_action_space=true"]` → {"frameskip": 1, "full_action_space":
    True}; raise UsageError for an item that is not KEY=VALUE or names a key twice."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise UsageError(f"--env-option {item!r}: expected KEY=VALUE (e.g. frameskip=1)")
        if key in options:
            raise UsageError(f"--env-option {key} is given twice")
        value = parse_value(text.strip())
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--env-option {key}: {text.strip()} is not a finite number")
        options[key] = value
    return options
