"""Doom through VizDoom's gymnasium wrapper: scenario ids such as `VizdoomBasic-v1` and map ids
such as `VizdoomFreedoom1E1M1-S3-v0` (the Doom and Doom II maps need the commercial WADs).

Observations are dicts (the picture is `screen`). A key map binds engine button names; the
wrapper's action is Discrete (button combinations), MultiBinary, Box (delta buttons) or a Dict
of a binary and a continuous part, and `doom_action` builds each from the held controls.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from recorder.envs.base import GymPlatform, as_frame, count_ids, heading, typed_info, wrapped
from recorder.envs.controls import cancel_opposites, nearest
from shared.errors import EnvNotFound, RomMissing, UsageError

# VizDoom's binary buttons (a test checks this against vizdoom.Button). Delta buttons are not
# bound to keys: `doom_buttons` drives them from the turn/move controls when a scenario has them.
CONTROLS = (
    "ATTACK", "USE", "JUMP", "CROUCH", "TURN180", "ALTATTACK", "RELOAD", "ZOOM", "SPEED",
    "STRAFE", "MOVE_RIGHT", "MOVE_LEFT", "MOVE_BACKWARD", "MOVE_FORWARD", "TURN_RIGHT",
    "TURN_LEFT", "LOOK_UP", "LOOK_DOWN", "MOVE_UP", "MOVE_DOWN", "LAND",
    *(f"SELECT_WEAPON{i}" for i in range(10)), "SELECT_NEXT_WEAPON", "SELECT_PREV_WEAPON",
    "DROP_SELECTED_WEAPON", "ACTIVATE_SELECTED_ITEM", "SELECT_NEXT_ITEM", "SELECT_PREV_ITEM",
    "DROP_SELECTED_ITEM",
)
DEFAULT_KEYS = MappingProxyType({
    "up": "MOVE_FORWARD", "down": "MOVE_BACKWARD", "left": "TURN_LEFT", "right": "TURN_RIGHT",
    "ctrl": "ATTACK", "space": "USE", "shift": "SPEED", "alt": "STRAFE",
    **{str(i): f"SELECT_WEAPON{i}" for i in range(1, 8)},
})
PRIORITY = ("MOVE_FORWARD", "MOVE_BACKWARD", "TURN_LEFT", "TURN_RIGHT", "MOVE_LEFT",
            "MOVE_RIGHT", "ATTACK", "USE", "SPEED", "STRAFE")
# Controls the scenario lacks, tried in order: a delta button (with this signed amount per tic:
# degrees for turns and looks, map units for moves) or another binary button.
FALLBACKS: dict[str, tuple[tuple[str, float], ...]] = {
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
# Map families whose WAD vizdoom does not ship, by the scenario config their ids use.
_WADS = {"Doom": "doom.wad", "Doom2": "doom2.wad"}
_CONFIG_FAMILY = {"doom.cfg": "Doom", "doom2.cfg": "Doom2"}


# -- held controls → the wrapper's action (pure) ----------------------------------------------

def doom_buttons(controls: Iterable[str], available: Sequence[str]) -> tuple[frozenset[str],
                                                                           dict[str, float]]:
    """The binary buttons to press and the delta values to set for the held controls, using only
    buttons the scenario has (`available`: game.get_available_buttons() names).

    STRAFE with a turn moves sideways (MOVE_LEFT/RIGHT when the scenario has them, else the
    engine's own STRAFE+TURN). A missing button falls back as FALLBACKS says."""
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
        for name, amount in FALLBACKS.get(control, ()):
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


def all_doom_combos(binary: Sequence[str], max_pressed: int) -> list[frozenset[str]]:
    """The wrapper's Discrete combinations built the way it builds them (for tests and labels
    without a live env): itertools.product order, at most `max_pressed` buttons."""
    return doom_combos([c for c in itertools.product((0, 1), repeat=len(binary))
                        if sum(c) <= max_pressed], binary)


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
            return nearest(pressed, combos, PRIORITY)
        return np.array([1 if b in pressed else 0 for b in binary], dtype=np.int8)

    kind = space["type"]
    if kind == "Dict":
        return {"binary": binary_part(space["spaces"]["binary"]), "continuous": continuous}
    if kind == "Box":
        return continuous
    return binary_part(space)


def _game_variables(env: Any) -> list[str]:
    """The names of the scenario's game variables, in the game's order."""
    return [str(v).split(".")[-1] for v in env.unwrapped.game.get_available_game_variables()]


def doom_available_buttons(env: Any) -> list[str]:
    return [b.name for b in env.unwrapped.game.get_available_buttons()]


def _combos_of(env: Any, binary: Sequence[str]) -> list[frozenset[str]] | None:
    """The Discrete button combinations of a live env (None when its binary part is not
    Discrete). Action i presses the buttons of button_map[i], in itertools.product order, so
    action 1 is the *last* button, not the first."""
    inner = env.unwrapped
    if getattr(inner, "max_buttons_pressed", 0) and hasattr(inner, "button_map"):
        return doom_combos(inner.button_map, binary)
    return None


# -- ids and WADs -----------------------------------------------------------------------------

def _family(env_id: str) -> str | None:
    m = re.match(r"Vizdoom(Doom2|Doom|Freedoom1|Freedoom2)(E\dM\d|MAP\d\d)-S\d-v\d$", env_id)
    return m.group(1) if m else None


def _missing_wads() -> set[str]:
    import os

    import vizdoom

    return {w for w in _WADS.values()
            if not os.path.exists(os.path.join(vizdoom.scenarios_path, w))}


class VizDoom(GymPlatform):
    name = "vizdoom"
    title = "VizDoom"
    module = "vizdoom"
    default_fps = 35.0
    fps_rule = "35/frame_skip"
    # The engine runs in a process of its own: on 2 cores one recorder, the writer encoding,
    # made 5.5 % more frames a second than two recorders (docs/BENCHMARKS.md, seventh pass).
    cores_per_recorder = 2
    controls = CONTROLS
    default_keys = DEFAULT_KEYS

    def register_ids(self) -> None:
        import vizdoom.gymnasium_wrapper  # noqa: F401  (importing it registers the Vizdoom* ids)

    def canonical_id(self, env_id: str, ids: list[str]) -> str | None:
        if env_id in ids:
            return env_id
        if env_id.startswith("Vizdoom") and env_id.endswith("-v0"):
            newer = env_id[:-1] + "1"
            if newer in ids:
                raise EnvNotFound(f"unknown env id {env_id!r}: VizDoom ids now end in -v1, "
                                  f"use {newer!r}")
        return None

    def check_playable(self, env_id: str) -> None:
        """The Doom and Doom II maps need the commercial doom.wad / doom2.wad beside the
        scenarios."""
        import gymnasium as gym
        import vizdoom

        self.register_ids()
        config = gym.registry[env_id].kwargs.get("scenario_config_file", "")
        wad = _WADS.get(_CONFIG_FAMILY.get(config, ""))
        if wad in _missing_wads():
            raise RomMissing(f"{env_id} needs {wad} (not shipped with vizdoom): copy yours to "
                             f"{vizdoom.scenarios_path}, or play a Freedoom map")

    def native_fps(self, env: Any) -> float:
        doom = env.unwrapped
        return doom.game.get_ticrate() / doom.frame_skip

    def settings(self, env: Any) -> dict:
        doom = env.unwrapped
        game = doom.game
        found = super().settings(env)
        found.update(
            frame_skip=doom.frame_skip, ticrate=game.get_ticrate(),
            resolution=[game.get_screen_width(), game.get_screen_height()],
            screen_format=str(game.get_screen_format()).split(".")[-1],
            map=game.get_doom_map(), skill=game.get_doom_skill(),
            episode_timeout=game.get_episode_timeout(),
            buttons=doom_available_buttons(env),
            game_variables=[str(v).split(".")[-1] for v in game.get_available_game_variables()],
        )
        return found

    def frame(self, observation: Any, env: Any) -> np.ndarray:
        if isinstance(observation, dict) and "screen" in observation:
            return as_frame(observation["screen"])
        return super().frame(observation, env)

    def info_columns(self, env: Any) -> dict[str, str]:
        """The scenario's game variables by name (HEALTH, AMMO2, KILLCOUNT...)."""
        return {name: "float64" for name in _game_variables(env)}

    def info_reader(self, env: Any, live: bool = True) -> Callable[[Mapping], dict]:
        if not live:  # the gymnasium env's info is empty: only the game knows them
            return super().info_reader(env, live)
        game, columns = env.unwrapped.game, self.info_columns(env)
        variables = list(game.get_available_game_variables())
        names = _game_variables(env)
        return lambda info: typed_info(
            {n: game.get_game_variable(v) for n, v in zip(names, variables, strict=True)},
            columns)

    # The buffers VizDoom renders beside the screen, each enabled by a DoomGame config key
    # (the gymnasium wrapper passes its kwargs to game.set_config): uint8 H×W (depth, labels)
    # or the screen's H×W×C (automap), in the observation under the same names.
    recordable = ("depth", "labels", "automap")

    def record_kwargs(self, names: tuple[str, ...]) -> dict:
        return {f"{name}_buffer_enabled": True for name in names}

    def extras_reader(self, env: Any, names: tuple[str, ...]) -> Callable[[Any], dict]:
        if not names:
            return super().extras_reader(env, names)

        def read(observation: Any) -> dict:
            out = {}
            for name in names:
                buffer = observation[name]
                if buffer.ndim == 3 and buffer.shape[2] == 1:
                    buffer = buffer[:, :, 0]  # depth and labels: one value per pixel
                out[name] = np.array(buffer, dtype=np.uint8, order="C")
            return out

        return read

    def action_labels(self, env: Any) -> list[str]:
        names = doom_available_buttons(env)
        binary = [b for b in names if not b.endswith("_DELTA")]
        combos = _combos_of(env, binary)
        return names if combos is None else doom_combo_labels(combos, binary)

    def resolver(self, env: Any) -> Callable[[frozenset[str]], Any]:
        from shared.spaces import describe_space

        space = describe_space(env.action_space)
        available = doom_available_buttons(env)
        binary = [b for b in available if not b.endswith("_DELTA")]
        combos = _combos_of(env, binary)
        return lambda controls: doom_action(controls, available, space, combos)

    def catalogue(self) -> dict[str, str]:
        missing = _missing_wads()
        notes = {}
        for i in sorted(self.ids()):
            wad = _WADS.get(_family(i) or "")
            notes[i] = f"needs {wad}" if wad in missing else ""
        return notes

    def summary(self, catalogue: Mapping[str, str]) -> list[str]:
        scenarios = [i for i in catalogue if _family(i) is None]
        singles = [i for i in scenarios if "-MultiBinary-" not in i]
        families = Counter(_family(i) for i in catalogue if _family(i))
        missing = {_family(i): note for i, note in catalogue.items() if note and _family(i)}
        maps = []
        for family, n in sorted(families.items()):
            note = f", {missing[family]} (not installed)" if family in missing else ""
            maps.append(f"Vizdoom{family}<map>-S<skill 1-5>-v0: {count_ids(n)}{note}")
        return [heading(self, f"{len(scenarios)} scenario ids, {sum(families.values())} map ids"),
                "  scenarios (each also as <name>-MultiBinary-v1):", *wrapped(singles, "    "),
                "  maps:", *(f"    {m}" for m in maps)]


PLATFORM = VizDoom()
