"""The part of an env's info that has no typed column, as a JSON object (never pickle): numpy
values become numbers and lists; a value JSON cannot hold (an object, NaN, infinity) is dropped
with one warning naming its key, and keys are dropped from the end (with a warning) while the
object is over shared.schema.MAX_INFO_JSON characters."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Container, Mapping
from typing import Any

import numpy as np

from shared.schema import MAX_INFO_JSON


class _Unrepresentable(Exception):
    pass


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise _Unrepresentable("not a finite number")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Unrepresentable(type(value).__name__)


def info_json(info: Mapping, typed: Container[str]) -> str:
    """The keys of `info` outside `typed` (the typed info columns) as a JSON object."""
    kept: dict[str, Any] = {}
    for key, value in info.items():
        if key in typed:
            continue
        try:
            kept[str(key)] = _json_value(value)
        except _Unrepresentable as why:
            _warn(f"info key {str(key)!r} dropped: {why} cannot be stored as JSON")
    if not kept:
        return "{}"  # every key has its column (ALE's info): no encoder call each step
    text = json.dumps(kept, separators=(",", ":"), allow_nan=False)
    while len(text) > MAX_INFO_JSON and kept:
        key = next(reversed(kept))
        del kept[key]
        _warn(f"info key {key!r} dropped: the info is over {MAX_INFO_JSON} characters as JSON")
        text = json.dumps(kept, separators=(",", ":"), allow_nan=False)
    return text


def _warn(message: str) -> None:
    # Python shows each distinct warning once per place: one line per key, not per step.
    warnings.warn(f"gymrec: {message}", stacklevel=3)
