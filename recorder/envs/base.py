"""The interface every platform (Atari, Stable-Retro, VizDoom, ...) answers, and small helpers
its implementations share. A platform is one module beside this one; `registry.py` lists them.

What gymrec asks of a platform: which env ids it owns (and what an alias or a near miss means),
how to make an env that renders to arrays, its default FPS, its action labels, the picture in an
observation, the controls a key map binds and how held controls become an action, its part of
`gymrec-record --list`, and the packages whose versions decide what its envs do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from shared.errors import GymrecError, UsageError
from shared.version import PLATFORM_PACKAGES

LISTING_WIDTH = 100  # characters per line of `--list`


class StartStateError(GymrecError):
    """A stored start state cannot be restored (damaged, or of another platform)."""


class Platform(ABC):
    """One family of envs behind what gymrec needs of it. Subclasses set the class attributes
    and implement the abstract methods; the others have defaults that suit gymnasium envs."""

    name: str  # the key in SessionStarts, key map tables and shared.version.PLATFORM_PACKAGES
    title: str  # for people: "Stable-Retro"
    module: str  # the import package its envs come from ("ale_py"): recognises a live env
    default_fps: float  # steps per second when the live env cannot say (see native_fps)
    controls: tuple[str, ...]  # every control name a key map may bind
    default_keys: Mapping[str, str]  # pygame key name ("up", "ctrl") → control
    # Cores one headless recorder keeps busy, for the default --workers: 1 for an emulator in
    # the recorder's process; more where the game runs in a process of its own beside it
    # (VizDoom), and one recorder with the writer encoding on the cores left is faster.
    cores_per_recorder: int = 1

    @property
    def fps_rule(self) -> str:
        """How `native_fps` is found, for people ("60/frameskip"); subclasses may say more."""
        return f"{self.default_fps:g}"

    # -- ids and resolution -------------------------------------------------------------------

    @abstractmethod
    def ids(self) -> list[str]:
        """Every env id of this platform that the installed packages know."""

    def canonical_id(self, env_id: str, ids: list[str]) -> str | None:
        """The id `env_id` stands for on this platform (`ids`: from `ids()`), or None when it is
        not one of ours. May raise EnvNotFound with a hint only this platform can give."""
        return env_id if env_id in ids else None

    def check_playable(self, env_id: str) -> None:
        """Raise RomMissing (with how to get it) when the game's ROM or WAD is not installed."""
        return None  # nothing to install by default

    # -- envs ---------------------------------------------------------------------------------

    def env_kwargs(self, options: Mapping[str, Any]) -> dict:
        """The kwargs an env is made with (stored in the dataset, used by replay): the user's
        `--env-option`s (already checked by `check_options`) and rendering to arrays."""
        return {**options, "render_mode": "rgb_array"}

    def check_options(self, env_id: str, options: Mapping[str, Any]) -> None:
        """Raise UsageError naming an option `env_id`'s envs do not take."""
        return None  # nothing known to check by default: making the env will tell

    def native_fps(self, env: Any) -> float:
        """The rate the game runs at, in env steps per second (its own clock ÷ frames per
        step): the default pace of human play, and the clock of "hours of play"."""
        return self.default_fps

    def settings(self, env: Any) -> dict:
        """The env's effective settings as made (its spec's kwargs and what only the live env
        knows), for the dataset card: JSON values only."""
        spec = getattr(env, "spec", None)
        return json_safe(dict(getattr(spec, "kwargs", None) or {}))

    @abstractmethod
    def make(self, env_id: str, kwargs: Mapping[str, Any]) -> Any:
        """A new env that renders to arrays, never to a window."""

    def frame(self, observation: Any, env: Any) -> np.ndarray:
        """The picture the player sees (height × width × channels, uint8): the observation
        itself when it is an image, else a render."""
        image = observation if is_image(observation) else env.render()
        return as_frame(image)

    def owns_env(self, env: Any) -> bool:
        """Whether a live env is one of this platform's (by the package of its class)."""
        return type(env.unwrapped).__module__.split(".")[0] == self.module

    @abstractmethod
    def action_labels(self, env: Any) -> list[str]:
        """A name per action (Discrete) or per element of the action vector."""

    @abstractmethod
    def resolver(self, env: Any) -> Callable[[frozenset[str]], Any]:
        """A function from the held controls (names in `controls`) to this env's action."""

    def remake(self, env: Any) -> tuple[str, dict]:
        """The id and options that make a live env (one a user made) again: its spec's id and
        kwargs, and its step limit where that is not the registered one."""
        import gymnasium as gym

        spec = env.spec
        if spec is None or spec.id is None:
            raise UsageError(f"cannot tell how {type(env.unwrapped).__name__} was made (it has no "
                             "spec): make it with gymnasium.make")
        options = {k: v for k, v in json_safe(dict(spec.kwargs)).items() if k != "render_mode"}
        registered = gym.spec(spec.id).max_episode_steps if spec.id in gym.registry else None
        if spec.max_episode_steps != registered:
            options["max_episode_steps"] = spec.max_episode_steps
        return spec.id, options

    # -- what the game knows ------------------------------------------------------------------

    def info_columns(self, env: Any) -> dict[str, str]:
        """The env's typed info columns, name → "int64", "float64" or "bool": values its info
        holds with every frame, with one type (fixed per env; the rest of an info goes to
        JSON). Default: none."""
        return {}

    def info_reader(self, env: Any, live: bool = True) -> Callable[[Mapping], dict]:
        """A function from the info that came with a frame (reset's or step's) to that frame's
        typed info, one value per info column (None where unknown). `live`: it may read the
        env itself, which holds that frame's state (False: a vector env's sub-env, elsewhere)."""
        columns = self.info_columns(env)
        return lambda info: typed_info(info, columns)

    # -- episode starts -----------------------------------------------------------------------

    def make_for_seed(self, env_id: str, kwargs: Mapping[str, Any], seed: int) -> Any:
        """`make`, for an env whose first reset is `first_reset(env, seed)`: a platform whose
        envs seed themselves as they are made may make it seeded with `seed` already."""
        return self.make(env_id, kwargs)

    def first_reset(self, env: Any, seed: int) -> tuple[Any, dict]:
        """`env.reset(seed=seed)` for an env from `make_for_seed(..., seed)`: the same
        observation, info and state, however the platform gets there."""
        return env.reset(seed=seed)

    def start_snapshot(self, env: Any) -> bytes | None:
        """The live `env`'s state (emulator and RNGs), taken just before an unseeded reset:
        restoring it (`restore_start`) into an env made alike, then resetting without a seed,
        replays that reset and the episode after it. None (the default): this platform's
        seeded resets are cheap, so later episodes are reset with their seed instead."""
        return None

    def restore_start(self, env: Any, snapshot: bytes) -> None:
        """Put a `start_snapshot` back into `env`. Raises StartStateError when it is damaged
        or not one of this platform's."""
        raise StartStateError(f"{self.title} envs have no start states")

    # -- extra observations (`gymrec-record --record NAME,...`) -------------------------------

    recordable: tuple[str, ...] = ()  # the extras its envs can record with each frame

    def record_kwargs(self, names: tuple[str, ...]) -> dict:
        """Keywords that make an env produce the extras `names` (VizDoom renders its buffers
        only when asked); stored with the env's other kwargs, so replay makes it alike."""
        return {}

    def extras_reader(self, env: Any, names: tuple[str, ...]) -> Callable[[Any], dict]:
        """A function from an observation of the live `env` (the one just returned) to its
        extras: name → a uint8 array of a fixed shape, copied (the env may reuse its own)."""
        if names:
            raise UsageError(f"{self.title} envs record no {', '.join(names)}")
        return lambda observation: {}

    # -- listing ------------------------------------------------------------------------------

    def catalogue(self) -> dict[str, str]:
        """Every id, sorted, → what is missing to play it ("ROM missing"; "" when nothing)."""
        return {i: "" for i in sorted(self.ids())}

    @abstractmethod
    def summary(self, catalogue: Mapping[str, str]) -> list[str]:
        """This platform's lines in `gymrec-record --list` (pure: over `catalogue()`)."""

    # -- versions -----------------------------------------------------------------------------

    @property
    def packages(self) -> tuple[str, ...]:
        """The distributions whose versions decide what the envs do (shared with the writer)."""
        return PLATFORM_PACKAGES.get(self.name, ())


class GymPlatform(Platform):
    """A platform whose envs are in gymnasium's registry once `register_ids()` has run, with entry
    points in `module`."""

    @abstractmethod
    def register_ids(self) -> None:
        """Put this platform's ids into gymnasium's registry (idempotent)."""

    def ids(self) -> list[str]:
        self.register_ids()
        return gym_ids(self.module)

    def make(self, env_id: str, kwargs: Mapping[str, Any]) -> Any:
        import gymnasium as gym

        self.register_ids()
        return gym.make(env_id, **kwargs)

    def check_options(self, env_id: str, options: Mapping[str, Any]) -> None:
        import gymnasium as gym

        self.register_ids()
        creator = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
        known = keywords_of(creator)
        check_keywords(env_id, options, None if known is None else known | GYM_MAKE_OPTIONS)


GYM_MAKE_OPTIONS = frozenset({"max_episode_steps", "disable_env_checker"})  # gym.make's own


def keywords_of(creator: Any) -> set[str] | None:
    """The keyword arguments `creator` (a class or function) takes; None: any (**kwargs)."""
    import inspect

    target = creator.__init__ if isinstance(creator, type) else creator
    params = inspect.signature(target).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "self"}


def check_keywords(env_id: str, options: Mapping[str, Any], known: set[str] | None) -> None:
    """Raise UsageError for options outside `known` (None: anything goes) or render_mode."""
    if "render_mode" in options:
        raise UsageError("--env-option render_mode: gymrec always renders to arrays")
    if known is None:
        return
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"--env-option {unknown[0]}: {env_id} takes no such option (it takes: "
                         f"{', '.join(sorted(known - {'render_mode'}))})")


def json_safe(value: Any) -> Any:
    """`value` with numpy scalars/arrays, tuples and enums turned into JSON types (others:
    their str)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def typed_info(values: Mapping, columns: Mapping[str, str]) -> dict:
    """`values` (an info, or what a platform read) as a typed info: each column's value as its
    dtype (int64: int, float64: float, bool: bool), None where absent or not a number."""
    kinds = {"int64": int, "float64": float, "bool": bool}
    out = {}
    for name, dtype in columns.items():
        value = values.get(name)
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        try:
            out[name] = None if value is None else kinds[dtype](value)
        except (TypeError, ValueError, OverflowError):
            out[name] = None
    return out


def is_image(observation: Any) -> bool:
    return isinstance(observation, np.ndarray) and observation.ndim == 3


def as_frame(image: np.ndarray) -> np.ndarray:
    """A contiguous uint8 height × width × channels array (a grey image gets one channel)."""
    if image.ndim == 2:
        image = image[:, :, None]
    return np.ascontiguousarray(image, dtype=np.uint8)


def gym_ids(module: str) -> list[str]:
    """The gymnasium registry's ids whose entry point lives in `module` (register first)."""
    import gymnasium as gym

    return [k for k, spec in gym.registry.items() if module in str(spec.entry_point).lower()]


# -- text helpers for `summary` ---------------------------------------------------------------

def heading(platform: Platform, what: str, title: str | None = None) -> str:
    return f"{title or platform.title} (fps: {platform.fps_rule}): {what}"


def count_ids(n: int) -> str:
    return f"{n} id" if n == 1 else f"{n} ids"


def wrapped(items: list[str], indent: str = "  ") -> list[str]:
    """Items two spaces apart, in lines of at most LISTING_WIDTH characters (never split)."""
    lines, current = [], ""
    for item in items:
        if current and len(indent) + len(current) + 2 + len(item) > LISTING_WIDTH:
            lines.append(indent + current)
            current = item
        else:
            current = f"{current}  {item}" if current else item
    return [*lines, indent + current] if current else lines
