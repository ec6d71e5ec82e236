"""Env ids → envs, for the three platforms, always rendering to arrays (never a window).

`resolve_env` is cheap and checks the id and ROM before anything starts; `make_env` builds it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.errors import EnvNotFound, RomMissing

ATARI, RETRO, VIZDOOM = "atari", "retro", "vizdoom"
DEFAULT_FPS = {ATARI: 15.0, RETRO: 60.0, VIZDOOM: 35.0}


@dataclass(frozen=True)
class EnvChoice:
    """A resolved env: which platform, its canonical id, and the kwargs it is made with."""

    platform: str
    env_id: str
    kwargs: dict = field(default_factory=dict)

    @property
    def default_fps(self) -> float:
        return DEFAULT_FPS[self.platform]


def _gym_ids(marker: str) -> list[str]:
    import gymnasium as gym

    _register_gym_platforms()
    return [k for k, spec in gym.registry.items() if marker in str(spec.entry_point).lower()]


def _register_gym_platforms() -> None:
    import ale_py
    import gymnasium as gym
    import vizdoom.gymnasium_wrapper  # noqa: F401  (registers the Vizdoom* ids)

    gym.register_envs(ale_py)


def retro_games() -> list[str]:
    import stable_retro as retro

    return list(retro.data.list_games())


def known_ids() -> dict[str, list[str]]:
    return {ATARI: _gym_ids("ale_py"), VIZDOOM: _gym_ids("vizdoom"), RETRO: retro_games()}


def resolve_env(env_id: str, state: str | None = None) -> EnvChoice:
    """Find the platform of `env_id`; raise EnvNotFound (naming close ids) or RomMissing."""
    ids = known_ids()
    if env_id in ids[ATARI]:
        return EnvChoice(ATARI, env_id, {"render_mode": "rgb_array"})
    if env_id in ids[VIZDOOM]:
        _check_wad(env_id)
        return EnvChoice(VIZDOOM, env_id, {"render_mode": "rgb_array"})
    retro_id = env_id if env_id in ids[RETRO] else f"{env_id}-v0"
    if retro_id in ids[RETRO]:
        _check_rom(retro_id)
        kwargs = {"render_mode": "rgb_array"}
        if state:
            kwargs["state"] = state
        return EnvChoice(RETRO, retro_id, kwargs)
    if env_id.startswith("Vizdoom") and env_id.endswith("-v0"):
        newer = env_id[:-1] + "1"
        if newer in ids[VIZDOOM]:
            raise EnvNotFound(f"unknown env id {env_id!r}: VizDoom ids now end in -v1, "
                              f"use {newer!r}")
    everything = [i for group in ids.values() for i in group]
    close = difflib.get_close_matches(env_id, everything, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `gymrec-record --list` shows all"
    raise EnvNotFound(f"unknown env id {env_id!r}{hint}")


def _check_rom(game: str) -> None:
    import stable_retro as retro

    try:
        retro.data.get_romfile_path(game, retro.data.Integrations.STABLE)
    except FileNotFoundError as exc:
        raise RomMissing(
            f"no ROM for {game}: import your ROMs with `python -m retro.import <folder>`"
        ) from exc


def _check_wad(env_id: str) -> None:
    """The Doom and Doom II maps need the commercial doom.wad / doom2.wad beside the scenarios."""
    import os

    import gymnasium as gym
    import vizdoom

    config = gym.registry[env_id].kwargs.get("scenario_config_file", "")
    wad = {"doom.cfg": "doom.wad", "doom2.cfg": "doom2.wad"}.get(config)
    if wad and not os.path.exists(os.path.join(vizdoom.scenarios_path, wad)):
        raise RomMissing(f"{env_id} needs {wad} (not shipped with vizdoom): copy yours to "
                         f"{vizdoom.scenarios_path}, or play a Freedoom map")


def make_env(choice: EnvChoice) -> Any:
    """Build the env (one per process for Stable-Retro, which allows only one emulator)."""
    if choice.platform == RETRO:
        import stable_retro as retro

        kwargs = dict(choice.kwargs)
        state = kwargs.pop("state", retro.State.DEFAULT)
        return retro.make(choice.env_id, state=state, **kwargs)
    import gymnasium as gym

    _register_gym_platforms()
    return gym.make(choice.env_id, **choice.kwargs)


def frame_of(observation: Any, env: Any) -> np.ndarray:
    """The picture the player sees: the observation itself, a Doom `screen`, or a render."""
    if isinstance(observation, np.ndarray) and observation.ndim == 3:
        frame = observation
    elif isinstance(observation, dict) and "screen" in observation:
        frame = observation["screen"]
    else:
        frame = env.render()
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return np.ascontiguousarray(frame, dtype=np.uint8)


def action_labels(env: Any, platform: str) -> list[str]:
    """Names for the actions: ALE meanings, Retro button names, VizDoom buttons."""
    inner = env.unwrapped
    if platform == ATARI:
        return list(inner.get_action_meanings())
    if platform == RETRO:
        return [b if b is not None else "" for b in inner.buttons]
    if platform == VIZDOOM:
        from recorder.play.actions import doom_combo_labels, doom_combos

        names = [b.name for b in inner.game.get_available_buttons()]
        binary = [b for b in names if not b.endswith("_DELTA")]
        if getattr(inner, "max_buttons_pressed", 0) and hasattr(inner, "button_map"):
            # Discrete: action i presses the buttons of button_map[i] (itertools.product order,
            # so action 1 is the *last* button, not the first).
            return doom_combo_labels(doom_combos(inner.button_map, binary), binary)
        return names
    return []
