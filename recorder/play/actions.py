"""Held controls → the env's action, per platform. Pure functions over action meanings, button
names and button combinations; `resolver_for(env, platform)` reads those from a live env.

When a game has no action for the whole combination held, the nearest legal one is used: the
action with the most of the held controls, directions before fire/attack. Opposite directions
held together cancel out. Nothing a player can press makes an illegal action.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from recorder.play.keymaps import ATARI, RETRO, VIZDOOM
from shared.errors import UsageError

_OPPOSITES = (
    ("UP", "DOWN"), ("LEFT", "RIGHT"), ("MOVE_LEFT", "MOVE_RIGHT"), ("TURN_LEFT", "TURN_RIGHT"),
    ("MOVE_FORWARD", "MOVE_BACKWARD"), ("LOOK_UP", "LOOK_DOWN"), ("MOVE_UP", "MOVE_DOWN"),
)


def cancel_opposites(controls: Iterable[str]) -> frozenset[str]:
    held = set(controls)
    for a, b in _OPPOSITES:
        if a in held and b in held:
            held -= {a, b}
    return frozenset(held)


def _nearest(wanted: frozenset[str], options: Sequence[frozenset[str]],
             priority: Sequence[str]) -> int:
    """Index of the option that is a subset of `wanted` with the most controls; ties go to the
    control earliest in `priority`, then to the first option (NOOP when nothing fits)."""
    rank = {c: i for i, c in enumerate(priority)}

    def score(i: int) -> tuple:
        option = options[i]
        if not option <= wanted:
            return (-1,)
        ranks = sorted(rank.get(c, len(rank)) for c in option)
        return (len(option), tuple(-r for r in ranks), -i)

    return max(range(len(options)), key=score)


# -- Atari ------------------------------------------------------------------------------------

ATARI_PRIORITY = ("UP", "DOWN", "LEFT", "RIGHT", "FIRE")


def atari_components(meaning: str) -> frozenset[str]:
    """"UPRIGHTFIRE" → {UP, RIGHT, FIRE}; "NOOP" → {}."""
    rest, parts = meaning.upper(), set()
    if rest == "NOOP":
        return frozenset()
    for token in ("UP", "DOWN", "RIGHT", "LEFT", "FIRE"):
        if token in rest:
            parts.add(token)
            rest = rest.replace(token, "", 1)
    if rest:
        raise UsageError(f"unknown Atari action meaning {meaning!r}")
    return frozenset(parts)


def atari_action(controls: Iterable[str], meanings: Sequence[str]) -> int:
    """The index in `meanings` (the env's get_action_meanings()) for the held controls."""
    options = [atari_components(m) for m in meanings]
    return _nearest(cancel_opposites(controls), options, ATARI_PRIORITY)


# -- Stable-Retro -----------------------------------------------------------------------------

# A control a console lacks may exist there under another name (Select is MODE on a Genesis).
RETRO_ALIASES = {"SELECT": ("MODE",), "MODE": ("SELECT",), "START": ("RUN", "PAUSE")}


def retro_action(controls: Iterable[str], buttons: Sequence[str | None]) -> np.ndarray:
    """MultiBinary vector over the env's `buttons` (env.unwrapped.buttons; None = unused)."""
    action = np.zeros(len(buttons), dtype=np.int8)
    index = {b: i for i, b in enumerate(buttons) if b}
    for control in cancel_opposites(controls):
        for name in (control, *RETRO_ALIASES.get(control, ())):
            if name in index:
                action[index[name]] = 1
                break
    return action


# -- VizDoom ----------------------------------------------------------------------------------

DOOM_PRIORITY = ("MOVE_FORWARD", "MOVE_BACKWARD", "TURN_LEFT", "TURN_RIGHT", "MOVE_LEFT",
                 "MOVE_RIGHT", "ATTACK", "USE", "SPEED", "STRAFE")
# Controls the scenario lacks, tried in order: a delta button (with this signed amount per tic:
# degrees for turns and looks, map units for moves) or another binary button.
DOOM_FALLBACKS: dict[str, tuple[tuple[str, float], ...]] = {
    "TURN_LEFT": (("TURN_LEFT_RIGHT_DELTA", -5.0), ("MOVE_LEFT", 0.0)),
    "TURN_RIGHT": (("TURN_LEFT_RIGHT_DELTA", 5.0), ("MOVE_RIGHT", 0.0)),
    "MOVE_LEFT": (("MOVE_LEFT_RIGHT_DELTA", -10.0),),
    "MOVE_RIGHT": (("MOVE_LEFT_RIGHT_DELTA", 10.0),),
    "MOVE_FORWARD": (("MOVE_FORWARD_BACKWARD_DELTA", 10.0),),
    "MOVE_BACKWARD": (("MOVE_FORWARD_BACKWARD_DELTA", -10.0),),
    "LOOK_UP": (("LOOK_UP_DOWN_DELTA", -5.0),),
    "LOOK_DOWN": (("LOOK_UP_DOWN_DELTA", 5.0),),
    "MOVE_UP": (("MOVE_UP_DOWN_DELTA", 10.0),),
    "MOVE_DOWN": (("MOVE_UP_DOWN_DELTA", -10.0),),
}
_STRAFED = {"TURN_LEFT": "MOVE_LEFT", "TURN_RIGHT": "MOVE_RIGHT"}


def doom_buttons(controls: Iterable[str], available: Sequence[str]) -> tuple[frozenset[str],
                                                                           dict[str, float]]:
    """The binary buttons to press and the delta values to set for the held controls, using only
    buttons the scenario has (`available`: game.get_available_buttons() names).

    STRAFE with a turn moves sideways (MOVE_LEFT/RIGHT when the scenario has them, else the
    engine's own STRAFE+TURN). A missing button falls back as DOOM_FALLBACKS says."""
    have = set(available)
    held = set(cancel_opposites(controls))
    if "STRAFE" in held:
        for turn, move in _STRAFED.items():
            if turn in held and move in have:
                held = (held - {turn}) | {move}
        if "STRAFE" not in have or not held & set(_STRAFED):
            held.discard("STRAFE")  # kept only where the engine itself turns a turn into strafe
    pressed: set[str] = set()
    deltas: dict[str, float] = {}
    for control in held:
        if control in have:
            pressed.add(control)
            continue
        for name, amount in DOOM_FALLBACKS.get(control, ()):
            if name in have:
                if name.endswith("_DELTA"):
                    deltas[name] = deltas.get(name, 0.0) + amount
                else:
                    pressed.add(name)
                break
    pressed = set(cancel_opposites(pressed))
    return frozenset(pressed), deltas


def doom_combos(button_map: Iterable[Sequence[int]], binary: Sequence[str]) -> list[frozenset]:
    """The gymnasium wrapper's Discrete actions as sets of button names (index = action)."""
    return [frozenset(b for b, on in zip(binary, combo, strict=True) if on)
            for combo in button_map]


def doom_combo_labels(combos: Sequence[frozenset[str]], binary: Sequence[str]) -> list[str]:
    """"NOOP", "ATTACK", "MOVE_LEFT+ATTACK", ...: button names in the scenario's order."""
    return ["+".join(b for b in binary if b in combo) or "NOOP" for combo in combos]


def doom_action(controls: Iterable[str], available: Sequence[str], space: dict,
                combos: Sequence[frozenset[str]] | None = None) -> Any:
    """The wrapper's action for the held controls.

    `available`: the scenario's buttons with the delta buttons first (the wrapper reorders them
    so); `space`: the action space description (shared.spaces.describe_space); `combos`: for a
    Discrete binary part, doom_combos(env.unwrapped.button_map, binary buttons)."""
    pressed, deltas = doom_buttons(controls, available)
    delta_names = [b for b in available if b.endswith("_DELTA")]
    binary = [b for b in available if not b.endswith("_DELTA")]
    continuous = np.array([deltas.get(b, 0.0) for b in delta_names], dtype=np.float32)

    def binary_part(desc: dict) -> Any:
        if desc["type"] == "Discrete":
            if combos is None:
                raise UsageError("a Discrete VizDoom action space needs its button combinations")
            return _nearest(pressed, combos, DOOM_PRIORITY)
        return np.array([1 if b in pressed else 0 for b in binary], dtype=np.int8)

    kind = space["type"]
    if kind == "Dict":
        return {"binary": binary_part(space["spaces"]["binary"]), "continuous": continuous}
    if kind == "Box":
        return continuous
    return binary_part(space)


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


# -- from a live env --------------------------------------------------------------------------

def resolver_for(env: Any, platform: str) -> Callable[[frozenset[str]], Any]:
    """A function from held controls to this env's action."""
    from shared.spaces import describe_space

    inner = env.unwrapped
    space = describe_space(env.action_space)
    if platform == ATARI:
        meanings = list(inner.get_action_meanings())
        table = {}

        def atari(controls: frozenset[str]) -> int:
            if controls not in table:  # at most 2^5 combinations: cache them
                table[controls] = atari_action(controls, meanings)
            return table[controls]

        return atari
    if platform == RETRO:
        if space["type"] != "MultiBinary":
            raise UsageError(f"human play needs a MultiBinary Retro action space, not "
                             f"{space['type']}")
        buttons = list(inner.buttons)
        return lambda controls: retro_action(controls, buttons)
    if platform == VIZDOOM:
        available = doom_available_buttons(env)
        binary = [b for b in available if not b.endswith("_DELTA")]
        combos = (doom_combos(inner.button_map, binary)
                  if getattr(inner, "max_buttons_pressed", 0) else None)
        return lambda controls: doom_action(controls, available, space, combos)
    raise UsageError(f"no keyboard controls for platform {platform!r}")


def doom_available_buttons(env: Any) -> list[str]:
    return [b.name for b in env.unwrapped.game.get_available_buttons()]


def all_doom_combos(binary: Sequence[str], max_pressed: int) -> list[frozenset[str]]:
    """The wrapper's Discrete combinations built the way it builds them (for tests and labels
    without a live env): itertools.product order, at most `max_pressed` buttons."""
    return doom_combos([c for c in itertools.product((0, 1), repeat=len(binary))
                        if sum(c) <= max_pressed], binary)
