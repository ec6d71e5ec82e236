"""The platforms gymrec plays, and what everything else asks of them: env ids → platform and
canonical id (`resolve_env`, cheap, checks the ROM before anything starts), envs (`make_env`),
pictures (`frame_of`), action labels and key resolvers. The CLI, key maps, listing, human play,
headless recording and replay all come through here; none of them names a platform.

Adding a platform: one module beside atari.py answering `base.Platform`, one line in
`_BUILT_IN`, and its packages in shared.version.PLATFORM_PACKAGES (which the writer reads).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recorder.envs import atari, retro, vizdoom
from recorder.envs.base import Platform, as_frame, is_image
from shared.errors import EnvNotFound, GymrecError, UsageError

_BUILT_IN: tuple[Platform, ...] = (atari.PLATFORM, retro.PLATFORM, vizdoom.PLATFORM)
_PLATFORMS: dict[str, Platform] = {p.name: p for p in _BUILT_IN}
_BY_ENV_TYPE: dict[type, Platform | None] = {}  # the platform of a live env, by its class


def register(platform: Platform) -> None:
    """Add a platform (after the built-in ones); raise UsageError if its name is taken."""
    if platform.name in _PLATFORMS:
        raise UsageError(f"platform {platform.name!r} is already registered")
    _PLATFORMS[platform.name] = platform
    _BY_ENV_TYPE.clear()


def unregister(name: str) -> None:
    """Remove a platform added with `register` (the built-in ones stay)."""
    if any(p.name == name for p in _BUILT_IN):
        raise UsageError(f"platform {name!r} is built in")
    _PLATFORMS.pop(name, None)
    _BY_ENV_TYPE.clear()


def platforms() -> list[Platform]:
    """Every platform, in the order listings and error messages name them."""
    return list(_PLATFORMS.values())


def platform_names() -> tuple[str, ...]:
    return tuple(_PLATFORMS)


def platform_named(name: str) -> Platform:
    try:
        return _PLATFORMS[name]
    except KeyError:
        raise UsageError(f"unknown platform {name!r} (one of "
                         f"{', '.join(_PLATFORMS)})") from None


@dataclass(frozen=True)
class EnvChoice:
    """A resolved env: which platform, its canonical id, and the kwargs it is made with."""

    platform: str
    env_id: str
    kwargs: dict = field(default_factory=dict)
    # The extra observations recorded with each frame (`--record`), e.g. ("ram",).
    record: tuple[str, ...] = ()


def known_ids() -> dict[str, list[str]]:
    """Platform name → every env id it knows."""
    return {p.name: p.ids() for p in platforms()}


def resolve_env(env_id: str, state: str | None = None,
                options: dict[str, Any] | None = None,
                record: tuple[str, ...] = ()) -> EnvChoice:
    """Find the platform of `env_id`; raise EnvNotFound (naming close ids), RomMissing, or
    UsageError for options the env does not take or extras it cannot record.

    An exact id wins over another platform's alias; `state` is a Stable-Retro save state;
    `options` are keyword arguments for making the env (`--env-option`); `record` the extra
    observations to record (`--record`)."""
    ids: dict[str, list[str]] = {}
    owner = None
    for p in platforms():  # the first platform that knows the id exactly: the others' modules
        ids[p.name] = p.ids()  # are not imported (~0.5 s of start-up between them)
        if env_id in ids[p.name]:
            owner = p
            break
    canonical = env_id
    if owner is None:
        for p in platforms():
            canonical = p.canonical_id(env_id, ids[p.name])
            if canonical is not None:
                owner = p
                break
    if owner is None:
        everything = [i for group in ids.values() for i in group]
        close = difflib.get_close_matches(env_id, everything, n=3, cutoff=0.5)
        hint = (f"; did you mean {', '.join(close)}?" if close
                else "; `gymrec-record --list` shows all")
        raise EnvNotFound(f"unknown env id {env_id!r}{hint}")
    owner.check_playable(canonical)
    options = dict(options or {})
    if state is not None:
        if owner.name != "retro":
            raise UsageError(f"--state is a Stable-Retro save state; {canonical} is an "
                             f"{owner.title} env")
        options["state"] = state  # the platform checks it like any other option
    owner.check_options(canonical, options)
    record = _recordable(owner, canonical, record)
    return EnvChoice(owner.name, canonical,
                     {**owner.env_kwargs(options), **owner.record_kwargs(record)}, record)


def _recordable(owner: Platform, env_id: str, record: tuple[str, ...]) -> tuple[str, ...]:
    """`record` without repeats; UsageError naming what `env_id` can record otherwise."""
    record = tuple(dict.fromkeys(record))
    unknown = [name for name in record if name not in owner.recordable]
    if unknown:
        can = ", ".join(owner.recordable) or "nothing but frames and info"
        raise UsageError(f"--record {unknown[0]}: {env_id} ({owner.title}) can record: {can}")
    return record


def recording(choice: EnvChoice, record: tuple[str, ...]) -> EnvChoice:
    """`choice` (of a live env, `choice_of_env`) recording the extras `record` as well;
    UsageError when its platform cannot, or the env was not made to produce them."""
    owner = platform_named(choice.platform)
    record = _recordable(owner, choice.env_id, record)
    for key, value in owner.record_kwargs(record).items():
        if choice.kwargs.get(key) != value:
            raise UsageError(f"record={list(record)}: make the env with {key}={value!r}")
    return dataclasses.replace(choice, record=record)


def make_env(choice: EnvChoice, first_seed: int | None = None) -> Any:
    """Build the env, rendering to arrays (one per process for Stable-Retro). An env that
    refuses the user's options is a UsageError naming them. `first_seed`: its first reset
    will be `first_reset(env, first_seed)` (ALE's env is then made seeded: one ROM load)."""
    platform = platform_named(choice.platform)

    def make() -> Any:
        if first_seed is None:
            return platform.make(choice.env_id, choice.kwargs)
        return platform.make_for_seed(choice.env_id, choice.kwargs, first_seed)

    if set(choice.kwargs) <= {"render_mode"}:
        return make()
    try:
        return make()
    except GymrecError:
        raise
    except Exception as exc:  # the env's own check of an option's value, in its own words
        options = {k: v for k, v in choice.kwargs.items() if k != "render_mode"}
        raise UsageError(f"{choice.env_id} cannot be made with options {options}: "
                         f"{type(exc).__name__}: {exc}") from exc


def choice_of_env(env: Any) -> EnvChoice:
    """The EnvChoice that makes a live env (one a user made) again, for replay; UsageError
    for an env of no platform."""
    platform = platform_of_env(env)
    if platform is None:
        names = ", ".join(p.title for p in platforms())
        raise UsageError(f"gymrec records {names} envs; {type(env.unwrapped).__name__} is "
                         "none of them")
    env_id, options = platform.remake(env)
    return EnvChoice(platform.name, env_id, platform.env_kwargs(options))


def native_fps(env: Any) -> float:
    """The rate `env`'s game runs at, in steps per second (60 ÷ frameskip for Atari...)."""
    platform = platform_of_env(env)
    return platform.native_fps(env) if platform else 30.0


def env_settings(env: Any) -> dict:
    """`env`'s effective settings as made, JSON values (for the session and the card)."""
    platform = platform_of_env(env)
    return platform.settings(env) if platform else {}


def first_reset(env: Any, seed: int) -> tuple[Any, dict]:
    """`env.reset(seed=seed)` for an env made by `make_env(choice, first_seed=seed)`."""
    platform = platform_of_env(env)
    return env.reset(seed=seed) if platform is None else platform.first_reset(env, seed)


def platform_of_env(env: Any) -> Platform | None:
    """The platform a live env belongs to (None for an env no platform claims)."""
    kind = type(env.unwrapped)
    if kind not in _BY_ENV_TYPE:
        _BY_ENV_TYPE[kind] = next((p for p in platforms() if p.owns_env(env)), None)
    return _BY_ENV_TYPE[kind]


def info_columns(env: Any) -> dict[str, str]:
    """`env`'s typed info columns, name → dtype ({} for an env no platform claims)."""
    platform = platform_of_env(env)
    return platform.info_columns(env) if platform else {}


def info_reader(env: Any, live: bool = True) -> Callable[[Mapping], dict]:
    """A function from the info with a frame to that frame's typed info (see
    Platform.info_reader); {} for an env no platform claims."""
    platform = platform_of_env(env)
    if platform is None:
        return lambda info: {}
    return platform.info_reader(env, live)


def extras_reader(env: Any, names: tuple[str, ...]) -> Callable[[Any], dict]:
    """A function from `env`'s latest observation to its extras `names` (name → uint8 array;
    see Platform.extras_reader); UsageError when its platform cannot record them."""
    platform = platform_of_env(env)
    if platform is None:
        if names:
            raise UsageError(f"cannot record {', '.join(names)} from "
                             f"{type(env.unwrapped).__name__}")
        return lambda observation: {}
    return platform.extras_reader(env, tuple(names))


def extras_spec(values: Mapping[str, np.ndarray]) -> dict:
    """The SessionStart.extras of the extras read from one observation: name → dtype, shape."""
    return {name: {"dtype": "uint8", "shape": list(array.shape)}
            for name, array in values.items()}


def frame_of(observation: Any, env: Any) -> np.ndarray:
    """The picture the player sees: the observation itself when it is an image, else what the
    env's platform takes from it (a Doom `screen`) or a render."""
    if is_image(observation):  # Atari and Retro, every frame: no lookup
        return as_frame(observation)
    platform = platform_of_env(env)
    if platform is None:
        return as_frame(env.render())
    return platform.frame(observation, env)


def action_labels(env: Any, platform: str) -> list[str]:
    """Names for the actions: ALE meanings, Retro button names, VizDoom buttons ([] for a
    platform not registered)."""
    known = _PLATFORMS.get(platform)
    return known.action_labels(env) if known else []


def resolver_for(env: Any, platform: str) -> Callable[[frozenset[str]], Any]:
    """A function from held controls to this env's action."""
    if platform not in _PLATFORMS:
        raise UsageError(f"no keyboard controls for platform {platform!r}")
    return _PLATFORMS[platform].resolver(env)


def fps_defaults() -> str:
    """How each platform's default fps is found, for help texts."""
    return "; ".join(f"{p.title} {p.fps_rule}" for p in platforms())
