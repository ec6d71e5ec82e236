"""Held controls → the env's action, and actions → short names for the HUD.

The rules per platform live in its module (recorder/envs/atari.py, retro.py, vizdoom.py, the
shared ones in recorder/envs/controls.py); `resolver_for(env, platform)` asks the registry for
the live env's resolver. Nothing a player can press makes an illegal action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recorder.envs import resolver_for

__all__ = ["describe_action", "resolver_for"]


def describe_action(action: Any, labels: Sequence[str]) -> str:
    """A short name for an action: a Discrete action's label, the pressed buttons of a binary
    vector, and for a Dict its binary part plus the delta buttons it moves ("" for no-op)."""
    if isinstance(action, dict):
        binary = [label for label in labels if not label.endswith("_DELTA")]
        deltas = [label for label in labels if label.endswith("_DELTA")]
        parts = [describe_action(action["binary"], binary)] if "binary" in action else []
        parts += [name for name, v in zip(deltas, action.get("continuous", ()), strict=False)
                  if v]
        return "+".join(p for p in parts if p and p != "NOOP")
    if np.ndim(action) == 0:
        label = labels[int(action)]
        return "" if label == "NOOP" else label
    names = labels if len(labels) == len(action) else [
        label for label in labels if not label.endswith("_DELTA")]
    return "+".join(n for n, on in zip(names, action, strict=True) if on)
