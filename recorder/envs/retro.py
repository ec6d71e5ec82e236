"""Console games through Stable-Retro: ids such as `Airstriker-Genesis-v0` (the older name
without `-v0` is accepted). Each game needs its ROM imported; one emulator per process.

Actions are MultiBinary over the console's buttons (`env.unwrapped.buttons`, None = unused);
a key map binds console button names, and a control the console lacks may exist under another
name (Select is MODE on a Genesis).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from recorder.envs.base import (
    Platform,
    check_keywords,
    heading,
    json_safe,
    keywords_of,
    typed_info,
    wrapped,
)
from recorder.envs.controls import cancel_opposites
from shared.errors import RomMissing, UsageError

# Every button name of the libretro cores stable-retro ships (a test checks this against
# retro.data.EMU_INFO); a keymap may name any of them, the env uses those its console has.
CONTROLS = (
    "B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z", "SELECT",
    "PAUSE", "RUN", "RESET", "BUTTON", "I", "II", "III", "IV", "V", "VI", "L", "R", "L2", "R2",
    "L3", "R3", "C-UP", "C-RIGHT", "C-MODE",
)
DEFAULT_KEYS = MappingProxyType({
    "up": "UP", "down": "DOWN", "left": "LEFT", "right": "RIGHT", "z": "B", "x": "A",
    "tab": "SELECT", "return": "START", "c": "C", "a": "X", "s": "Y", "d": "Z", "q": "L",
    "w": "R",
})
ALIASES = {"SELECT": ("MODE",), "MODE": ("SELECT",), "START": ("RUN", "PAUSE")}
IMPORT_HINT = "python -m retro.import"


def retro_action(controls: Iterable[str], buttons: Sequence[str | None]) -> np.ndarray:
    """MultiBinary vector over the env's `buttons` (env.unwrapped.buttons; None = unused)."""
    action = np.zeros(len(buttons), dtype=np.int8)
    index = {b: i for i, b in enumerate(buttons) if b}
    for control in cancel_opposites(controls):
        for name in (control, *ALIASES.get(control, ())):
            if name in index:
                action[index[name]] = 1
                break
    return action


def has_rom(game: str) -> bool:
    import stable_retro as retro

    try:
        retro.data.get_romfile_path(game, retro.data.Integrations.STABLE)
    except FileNotFoundError:
        return False
    return True


class Retro(Platform):
    name = "retro"
    title = "Stable-Retro"
    module = "stable_retro"
    default_fps = 60.0
    fps_rule = "the console's"
    controls = CONTROLS
    default_keys = DEFAULT_KEYS

    def ids(self) -> list[str]:
        import stable_retro as retro

        return list(retro.data.list_games())

    def canonical_id(self, env_id: str, ids: list[str]) -> str | None:
        for candidate in (env_id, f"{env_id}-v0"):
            if candidate in ids:
                return candidate
        return None

    def check_playable(self, env_id: str) -> None:
        if not has_rom(env_id):
            raise RomMissing(f"no ROM for {env_id}: import your ROMs with "
                             f"`{IMPORT_HINT} <folder>`")

    def check_options(self, env_id: str, options: Mapping[str, Any]) -> None:
        import stable_retro as retro

        known = keywords_of(retro.RetroEnv) - {"game", "record"}
        check_keywords(env_id, options, known)
        state = options.get("state")
        if isinstance(state, str):
            states = retro.data.list_states(env_id)
            if state.removesuffix(".state") not in states:
                raise UsageError(f"{env_id} has no save state {state!r} (it has: "
                                 f"{', '.join(states) or 'none'})")

    def native_fps(self, env: Any) -> float:
        return float(env.unwrapped.em.get_screen_rate())

    def settings(self, env: Any) -> dict:
        retro_env = env.unwrapped
        return json_safe({
            "game": retro_env.gamename, "state": retro_env.statename, "system": retro_env.system,
            "players": retro_env.players,
            "use_restricted_actions": getattr(retro_env.use_restricted_actions, "name",
                                              retro_env.use_restricted_actions),
            "screen_rate": retro_env.em.get_screen_rate(),
            "buttons": [b for b in retro_env.buttons if b],
        })

    def make(self, env_id: str, kwargs: Mapping[str, Any]) -> Any:
        """Stable-Retro allows one emulator per process."""
        import stable_retro as retro

        kwargs = dict(kwargs)
        state = kwargs.pop("state", retro.State.DEFAULT)
        for key, kind in (("use_restricted_actions", retro.Actions),
                          ("obs_type", retro.Observations)):
            if isinstance(kwargs.get(key), str):  # by name, as stored: "DISCRETE"
                try:
                    kwargs[key] = kind[kwargs[key]]
                except KeyError:
                    raise UsageError(f"{key} {kwargs[key]!r} is not one of "
                                     f"{', '.join(kind.__members__)}") from None
        return retro.make(env_id, state=state, **kwargs)

    def remake(self, env: Any) -> tuple[str, dict]:
        import stable_retro as retro

        game = env.unwrapped
        options = {"state": game.statename.removesuffix(".state")} if game.statename else {}
        if game.players != 1:
            options["players"] = game.players
        if game.use_restricted_actions != retro.Actions.FILTERED:
            options["use_restricted_actions"] = game.use_restricted_actions.name
        return game.gamename, options

    def action_labels(self, env: Any) -> list[str]:
        return [b if b is not None else "" for b in env.unwrapped.buttons]

    def info_columns(self, env: Any) -> dict[str, str]:
        """The game's data.json variables (score, lives, ...): integers in its RAM."""
        return {name: "int64" for name in sorted(env.unwrapped.data.lookup_all())}

    def info_reader(self, env: Any, live: bool = True) -> Callable[[Mapping], dict]:
        if not live:
            return super().info_reader(env, live)
        columns, data = self.info_columns(env), env.unwrapped.data
        # A step's info is data.lookup_all(); reset's is {}, so read it where it is.
        return lambda info: typed_info(data.lookup_all(), columns)

    recordable = ("ram",)

    def extras_reader(self, env: Any, names: tuple[str, ...]) -> Callable[[Any], dict]:
        if not names:
            return super().extras_reader(env, names)
        game = env.unwrapped  # get_ram(): the emulator's RAM (64 KB on a Genesis), a copy
        return lambda observation: {"ram": np.array(game.get_ram(), dtype=np.uint8)}

    def resolver(self, env: Any) -> Callable[[frozenset[str]], Any]:
        from shared.spaces import describe_space

        kind = describe_space(env.action_space)["type"]
        if kind != "MultiBinary":
            raise UsageError(f"human play needs a MultiBinary Retro action space, not {kind}")
        buttons = list(env.unwrapped.buttons)
        return lambda controls: retro_action(controls, buttons)

    def catalogue(self) -> dict[str, str]:
        return {g: "" if has_rom(g) else "ROM missing" for g in sorted(self.ids())}

    def summary(self, catalogue: Mapping[str, str]) -> list[str]:
        ready = [g for g, missing in catalogue.items() if not missing]
        consoles = Counter(g.removesuffix("-v0").rsplit("-", 1)[-1]
                           for g, missing in catalogue.items() if missing)
        lines = [heading(self, f"{len(ready)} of {len(catalogue)} games have their ROM "
                               f"(import yours: {IMPORT_HINT} DIR)"),
                 "  ROM available:", *wrapped(ready, "    ")]
        if consoles:
            lines += ["  ROM missing:",
                      *wrapped([f"{c} {n}" for c, n in consoles.most_common()], "    ")]
        return lines


PLATFORM = Retro()
